package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"

	"go.temporal.io/sdk/converter"

	"github.com/dunningco/dunning/codec"
)

// devCodec is dev mode's payload encryption: the environment's keys, else a
// key kept next to Temporal's SQLite file, and the codec endpoint on the
// public address that the embedded Web UI decodes with.
type devCodec struct {
	codec    *codec.Codec // nil when DUNNING_CODEC_DISABLED=true
	source   string       // where the keys came from; no secret
	endpoint string       // what the Web UI is given; "" without a codec
	keysFile string       // the generated key's file, for the CLI; "" otherwise
}

func newDevCodec(getenv func(string) string, dbFile string, api net.Addr) (*devCodec, error) {
	dir := ""
	if dbFile != "" { // history in memory: so is the key
		dir = filepath.Dir(dbFile)
	}
	c, source, err := codec.DevFromEnv(getenv, dir)
	if err != nil {
		return nil, fmt.Errorf("payload encryption: %w", err)
	}
	d := &devCodec{codec: c, source: source}
	if dir != "" && source == filepath.Join(dir, codec.DevKeysFile) {
		d.keysFile = source
	}
	if c != nil {
		d.endpoint = "http://" + browserHostPort(api) + codec.PathPrefix
	}
	return d, nil
}

// dataConverter is what every Temporal client and worker of dev mode uses.
func (d *devCodec) dataConverter() converter.DataConverter { return codec.DataConverter(d.codec) }

// mount serves the codec endpoint on the public surface's mux, open to the
// embedded Web UI at uiAddress.
func (d *devCodec) mount(mux *http.ServeMux, getenv func(string) string, uiAddress string, logger *slog.Logger) error {
	if d.codec == nil {
		return nil
	}
	h, err := codec.NewDevHandler(d.codec, getenv, uiAddress, logger.With("component", "codec"))
	if err != nil {
		return err
	}
	mux.Handle(codec.PathPrefix+"/", h)
	return nil
}

// bannerLine tells the developer where the key is; it prints no secret.
func (d *devCodec) bannerLine() string {
	if d.codec == nil {
		return "    Payloads         not encrypted (" + d.source + ")\n"
	}
	line := fmt.Sprintf("    Codec endpoint   %s (key %s from %s)\n", d.endpoint, d.codec.KeyID(), d.source)
	if d.keysFile != "" {
		// The CLI refuses to talk to Temporal without the key.
		line += fmt.Sprintf("    CLI key          export %s=%s\n", codec.EnvKeysFile, d.keysFile)
	}
	return line
}

// browserHostPort is addr as a browser on this machine reaches it: a
// listener on every interface is reached on 127.0.0.1.
func browserHostPort(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	}
	return tcp.String()
}
