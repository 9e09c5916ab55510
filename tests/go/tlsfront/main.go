// An HTTPS service for the Go crypto/tls tests (issue 12): a net/http TLS
// server whose /work/ID handler calls DOWNSTREAM/leaf/ID over HTTPS through
// one keep-alive net/http client (crypto/tls on both sides, nothing of
// OpenSSL), and answers 200 with the downstream's body.
//
//   GET /work/ID      -> calls DOWNSTREAM/leaf/ID, answers "work ID: <its body>"
//   GET /leaf/ID      -> "leaf ID\n"
//   GET /big?n=N      -> N bytes of a fixed pattern (byte i = (i*7+3) % 251)
//   POST /echo        -> the request body, as received
//
//   tlsfront -listen HOST:PORT -cert CERT -key KEY [-downstream URL -cafile CA]
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "address to serve")
	cert := flag.String("cert", "", "certificate (PEM)")
	key := flag.String("key", "", "private key (PEM)")
	downstream := flag.String("downstream", "", "base URL of the HTTPS service /work calls")
	cafile := flag.String("cafile", "", "CA the downstream's certificate is checked against")
	flag.Parse()

	client := &http.Client{Timeout: 30 * time.Second}
	if *cafile != "" {
		pem, err := os.ReadFile(*cafile)
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client.Transport = &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool},
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     90 * time.Second,
		}
	}
	http.HandleFunc("/work/", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Path[len("/work/"):]
		resp, err := client.Get(*downstream + "/leaf/" + id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			http.Error(w, "downstream status "+resp.Status, http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "work %s: %s", id, body)
	})
	http.HandleFunc("/leaf/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "leaf %s\n", r.URL.Path[len("/leaf/"):])
	})
	http.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte((i*7 + 3) % 251)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(b)
	})
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		panic(err)
	}
	fmt.Println("listening")
	srv := &http.Server{}
	panic(srv.ServeTLS(ln, *cert, *key))
}
