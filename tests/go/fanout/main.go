// A net/http service for the runtime-context tests (issue 11, Go): each
// request /work?id=ID waits a random 0..jitter ms, calls every downstream
// URL fan times concurrently (goroutines + sync.WaitGroup) through one
// net/http client whose keep-alive pool is smaller than the concurrency
// (MaxConnsPerHost), waits a random 0..jitter ms again, and answers 200.
// Outgoing URLs carry the incoming id and the call's index:
// DOWNSTREAM/work?id=ID&call=K, so a test can tell which request caused
// which call.
//
// GET /exec replaces the process with `sleep 60` (exec while probed).
//
//   fanout -listen HOST:PORT -downstream URL [-fan N] [-jitter-ms MS] [-pool N]
package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "address to serve")
	downstream := flag.String("downstream", "", "base URL of the service to call")
	fan := flag.Int("fan", 2, "concurrent calls per request")
	jitter := flag.Int("jitter-ms", 20, "random wait before and after the calls, 0..N ms")
	pool := flag.Int("pool", 4, "connections per downstream host (keep-alive pool)")
	flag.Parse()

	client := &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxConnsPerHost:     *pool,
			MaxIdleConnsPerHost: *pool,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	wait := func() {
		if *jitter > 0 {
			time.Sleep(time.Duration(rand.Intn(*jitter*1000)) * time.Microsecond)
		}
	}
	http.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		wait()
		var wg sync.WaitGroup
		errs := make([]error, *fan)
		for k := 0; k < *fan; k++ {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				resp, err := client.Get(fmt.Sprintf("%s/work?id=%s&call=%d", *downstream, id, k))
				if err != nil {
					errs[k] = err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs[k] = fmt.Errorf("downstream status %d", resp.StatusCode)
				}
			}(k)
		}
		wg.Wait()
		wait()
		for _, err := range errs {
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		w.Write([]byte("ok\n"))
	})
	http.HandleFunc("/exec", func(w http.ResponseWriter, r *http.Request) {
		err := syscall.Exec("/bin/sleep", []string{"sleep", "60"}, os.Environ())
		http.Error(w, err.Error(), http.StatusInternalServerError)
	})
	fmt.Println("listening")
	if err := http.ListenAndServe(*listen, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
