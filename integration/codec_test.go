package integration

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/proto"

	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/workflows"
)

// platformCodec encrypts every payload of the test platform, as
// DUNNING_CODEC_KEYS does in production. While RECORD_HISTORIES records
// replay fixtures it is nil (no encryption): the workflows package replays
// them with the SDK's default converter and no key, and this run's key
// dies with the process anyway.
var platformCodec = func() *codec.Codec {
	if os.Getenv("RECORD_HISTORIES") != "" {
		return nil
	}
	k, err := codec.GenerateKey("it-1")
	if err != nil {
		panic(err)
	}
	c, err := codec.New(k)
	if err != nil {
		panic(err)
	}
	return c
}()

// testHistoryHasNoPII reads a finished run's history as Temporal stores it
// (and as anyone with Web UI access but no codec endpoint sees it): no event
// may hold the customer's email or phone number in plain text, yet the
// codec must find both in it.
func (p *platform) testHistoryHasNoPII(t *testing.T) {
	if platformCodec == nil {
		t.Skip("RECORD_HISTORIES is set: the platform runs without encryption to record replayable fixtures")
	}
	const invoice = "inv-pii"
	code, body := p.do(t, http.MethodPost, "/v1/declines", decline(invoice, "sim:succeed-on=2;code=do_not_honor", "it-fast"))
	if code != http.StatusAccepted {
		t.Fatalf("start: %d %v", code, body)
	}
	// A recovered run has sent messages: the recipients were in activity
	// inputs, and the worker read its encrypted input to get there.
	if res := p.result(t, invoice); res.Outcome != policy.Recovered {
		t.Fatalf("result = %+v, want recovered", res)
	}

	raw, err := client.Dial(client.Options{
		HostPort: p.hostPort, Namespace: p.namespace,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		t.Fatalf("dial Temporal without the codec: %v", err)
	}
	defer raw.Close()
	ctx := context.Background()
	it := raw.GetWorkflowHistory(ctx, workflows.WorkflowID("acme", invoice), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		events = append(events, ev)
	}

	// The phone without its "+" too: a number split or reformatted on its
	// way into a payload would still show.
	pii := []string{"ada@example.com", "+48123456789", "48123456789"}
	var sealed, plain int
	var decoded bytes.Buffer
	for _, ev := range events {
		// Every byte of the event, not just its payloads: failure messages,
		// search attributes and metadata are stored in the clear.
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range pii {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("event %d (%s) holds %q in plain text", ev.GetEventId(), ev.GetEventType(), s)
			}
		}
		err = proxy.VisitPayloads(ctx, ev, proxy.VisitPayloadsOptions{
			SkipSearchAttributes: true, // the server indexes them; they carry no PII (workflows/searchattrs.go)
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				for _, pl := range ps {
					if string(pl.GetMetadata()[converter.MetadataEncoding]) == codec.EncodingEncrypted {
						sealed++
					} else {
						plain++
						t.Errorf("event %d (%s): a payload is not encrypted: %v", ev.GetEventId(), ev.GetEventType(), pl.GetMetadata())
					}
				}
				out, err := platformCodec.Decode(ps)
				for _, pl := range out {
					decoded.Write(pl.GetData())
				}
				return ps, err
			},
		})
		if err != nil {
			t.Fatalf("event %d (%s): %v", ev.GetEventId(), ev.GetEventType(), err)
		}
	}
	// Not vacuous: the data is in the history, sealed.
	if sealed == 0 {
		t.Fatal("no encrypted payload in the history")
	}
	for _, s := range pii[:2] {
		if !bytes.Contains(decoded.Bytes(), []byte(s)) {
			t.Errorf("decoded history lacks %q: the test saw no customer data at all", s)
		}
	}
	t.Logf("%d events, %d payloads encrypted, %d plain", len(events), sealed, plain)
}
