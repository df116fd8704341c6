package sse

import (
	"context"
	"testing"
	"time"
)

func TestSubscribe_ReplayLiveResumeEvictClose(t *testing.T) {
	b := NewBroker(WithQueueSize(2), WithReplaySize(3))
	defer b.Close()
	b.Open("t")
	b.Publish("t", []byte(`{"n":1}`))
	b.Publish("t", []byte("two\r\nlines"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	sub, err := b.Subscribe("t", "")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`{"n":1}`, "two\nlines"} {
		ev, err := sub.Next(ctx)
		if err != nil || ev.ID != uint64(i+1) || string(ev.Data) != want {
			t.Fatalf("replay %d: %d %q %v", i, ev.ID, ev.Data, err)
		}
	}
	b.Publish("t", []byte(`{"n":3}`))
	if ev, err := sub.Next(ctx); err != nil || ev.ID != 3 {
		t.Fatalf("live: %+v %v", ev, err)
	}
	// Three unread events overflow a queue of two: evicted.
	for range 3 {
		b.Publish("t", []byte(`{}`))
	}
	if _, err := sub.Next(ctx); err != ErrEvicted {
		t.Fatalf("want ErrEvicted, got %v", err)
	}
	sub.Close()
	sub.Close()

	// Resume after id 5: only 6 follows. Resuming from before the replay
	// window starts with a reset event.
	sub, err = b.Subscribe("t", "5")
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := sub.Next(ctx); err != nil || ev.ID != 6 {
		t.Fatalf("resume: %+v %v", ev, err)
	}
	sub.Close()
	sub, err = b.Subscribe("t", "1")
	if err != nil {
		t.Fatal(err)
	}
	if ev, _ := sub.Next(ctx); string(ev.Data[:15]) != `{"type":"reset"` {
		t.Fatalf("want reset, got %q", ev.Data)
	}
	b.CloseTopic("t")
	for {
		if _, err := sub.Next(ctx); err != nil {
			if err != ErrClosed {
				t.Fatalf("want ErrClosed, got %v", err)
			}
			break
		}
	}
	if _, err := b.Subscribe("t", ""); err != ErrTopicNotFound {
		t.Fatalf("want ErrTopicNotFound, got %v", err)
	}
}
