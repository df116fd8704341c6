package sse

import (
	"net"
	"testing"
	"time"
)

// BenchmarkLoopbackWrite is the yardstick for fan-out: the cost of one
// write(2) of an event-sized chunk (300 bytes) to a loopback TCP socket
// whose reader is not reading, i.e. the kernel's send and receive path
// without any wake-up. A fan-out to S subscribers cannot cost the writer
// less than S times this (docs/BENCHMARKS.md, "Fan-out").
//
//	go test ./sse -run '^$' -bench LoopbackWrite -benchtime 20000x
func BenchmarkLoopbackWrite(b *testing.B) {
	const sockets = 1000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var writers, readers []net.Conn
	defer func() {
		for _, c := range append(writers, readers...) {
			c.Close()
		}
	}()
	for range sockets {
		r, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		w, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		readers, writers = append(readers, r), append(writers, w)
	}
	event := make([]byte, 300)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(event)))
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%sockets == 0 { // keep the receive buffers from filling, off the clock
			b.StopTimer()
			for _, r := range readers {
				_ = r.SetReadDeadline(time.Now().Add(time.Millisecond))
				_, _ = r.Read(buf)
			}
			b.StartTimer()
		}
		if _, err := writers[i%sockets].Write(event); err != nil {
			b.Fatal(err)
		}
	}
}
