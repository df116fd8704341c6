package main

import (
	"math"
	"slices"
	"time"
)

// Spread is the median of several runs of one figure, with its range.
type Spread struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Runs   []float64 `json:"runs"`
}

func spreadOf(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return Spread{Median: percentile(s, 50), Min: s[0], Max: s[len(s)-1], Runs: v}
}

// percentile of sorted values (nearest rank with linear interpolation).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	if len(sorted) == 1 {
		return sorted[0]
	}
	r := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(r))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(r-float64(lo))
}

// Latency summarises one run's latencies in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func latencyOf(d []time.Duration) Latency {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x) / 1e6
	}
	slices.Sort(v)
	if len(v) == 0 {
		return Latency{}
	}
	return Latency{N: len(v), P50: percentile(v, 50), P90: percentile(v, 90), P99: percentile(v, 99), Max: v[len(v)-1]}
}

// collect builds a Spread from one field of each run.
func collect[T any](runs []T, f func(T) float64) Spread {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return spreadOf(v)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
