// Command api serves the greeting over HTTP. It imports net/http, which with cgo on would link
// the C resolver dynamically; kiln builds it static.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"

	"example.com/shop/internal/greet"
)

var version = "dev"

func main() {
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = ":8080"
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (version %s)\n", greet.Message(), version)
	})
	log.Printf("api %s listening on %s", version, addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
