// Command dunning serves the dunning intake API and lets operators start,
// inspect and steer dunning runs. Run "dunning help" for the commands.
package main

import (
	"context"
	"os"

	"github.com/dunningco/dunning/starter/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
