package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/dunningco/dunning/openapi"
)

// openAPI prints the HTTP API's OpenAPI document (-o json), the one served
// at /openapi.json, or its operations as a table: for generating clients
// and for a quick look without a server.
func (a *app) openAPI(_ context.Context, args []string) error {
	fs := a.newFlagSet("openapi", "[-o table|json]")
	out := fs.addOutput()
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == formatJSON {
		doc, err := openapi.JSON()
		if err != nil {
			return err
		}
		if _, err := a.stdout.Write(doc); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	doc, err := openapi.Document()
	if err != nil {
		return err
	}
	return a.emit(*out, nil, func(w io.Writer) {
		fmt.Fprintln(w, "METHOD\tPATH\tOPERATION\tLISTENER\tSUMMARY")
		for _, op := range openapi.Operations(doc) {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", op.Method, op.Path, op.OperationID, op.Surface, op.Summary)
		}
	})
}
