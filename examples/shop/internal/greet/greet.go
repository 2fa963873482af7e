// Package greet is shared by every service of the example, so a change here affects them all.
package greet

import _ "embed"

//go:embed message.txt
var message string

// Message returns the embedded greeting.
func Message() string { return message }
