// Command referrers-registry serves an in-memory OCI registry with the OCI 1.1 referrers API
// (go-containerregistry's pkg/registry), on a loopback address, for kiln's interop tests.
// Usage: referrers-registry ADDR   (e.g. 127.0.0.1:0; the bound address is printed on stdout).
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("listen %s: %v", addr, err)
	}
	fmt.Println(ln.Addr().String())
	h := registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(os.Stderr, "", 0)))
	log.Fatal(http.Serve(ln, h))
}
