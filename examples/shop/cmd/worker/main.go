// Command worker prints the greeting and the current user, importing os/user.
package main

import (
	"fmt"
	"os/user"

	"example.com/shop/internal/greet"
)

func main() {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	fmt.Printf("%s, %s\n", greet.Message(), name)
}
