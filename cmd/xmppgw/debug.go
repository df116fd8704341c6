package main

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"runtime"
)

// debugMux serves net/http/pprof and /debug/memstats for profiling and the
// benchmarks. It is only ever bound to a loopback address
// (XMPPGW_DEBUG_LISTEN): profiles expose internals.
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// memstats collects garbage first, so the heap figures are live memory.
	mux.HandleFunc("/debug/memstats", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]uint64{"goroutines": uint64(runtime.NumGoroutine()),
			"heap_inuse": ms.HeapInuse, "heap_alloc": ms.HeapAlloc, "stack_inuse": ms.StackInuse, "sys": ms.Sys})
	})
	return mux
}
