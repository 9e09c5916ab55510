// A net/http service for the uprobes tests: /login runs main.handleLogin ->
// main.checkPassword, each sleeping a known time, and checkPassword asks a
// backend over HTTP (a CLIENT span inside the INTERNAL chain), then
// main.renderPage (a frame that makes the goroutine's stack grow). /panic runs
// main.handleLogin -> main.mustFail, which panics; the handler recovers.
//
//   login LISTEN_PORT BACKEND_URL
//
// With "addresses" as the only argument it prints the entry addresses of
// the functions the unit tests look up, and exits.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"time"
)

var backend string

//go:noinline
func checkPassword(user string) bool {
	time.Sleep(15 * time.Millisecond)
	if backend != "" {
		resp, err := http.Get(backend + "/user?name=" + user)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return user != "mallory"
}

// renderPage's frame (120 KiB: under the compiler's 128 KiB limit for a
// stack variable) is bigger than the goroutine's stack: its prologue calls
// runtime.morestack, which runs it again from its entry on the grown stack
// (one call, two entries).
//
//go:noinline
func renderPage(user string) int {
	var page [120 << 10]byte
	time.Sleep(5 * time.Millisecond)
	n := copy(page[len(page)-64:], "welcome "+user)
	return n + int(page[len(page)-1])
}

//go:noinline
func mustFail(user string) {
	time.Sleep(5 * time.Millisecond)
	panic("no such user: " + user)
}

//go:noinline
func handleLogin(w http.ResponseWriter, r *http.Request) {
	time.Sleep(10 * time.Millisecond)
	if r.URL.Path == "/panic" {
		defer func() {
			if recover() != nil {
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte("panic\n"))
			}
		}()
		mustFail(r.URL.Query().Get("user"))
		return
	}
	if checkPassword(r.URL.Query().Get("user")) {
		renderPage(r.URL.Query().Get("user"))
		w.Write([]byte("welcome\n"))
	} else {
		w.WriteHeader(http.StatusForbidden)
	}
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "addresses" {
		fmt.Printf("main.handleLogin %#x\n", reflect.ValueOf(handleLogin).Pointer())
		fmt.Printf("main.checkPassword %#x\n", reflect.ValueOf(checkPassword).Pointer())
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: login LISTEN_PORT BACKEND_URL")
		os.Exit(2)
	}
	backend = os.Args[2]
	http.HandleFunc("/login", handleLogin)
	http.HandleFunc("/panic", handleLogin)
	fmt.Println("ready")
	if err := http.ListenAndServe("127.0.0.1:"+os.Args[1], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
