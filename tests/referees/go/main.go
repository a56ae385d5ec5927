// Command referee is the Go crypto/tls referee client (standard library only, so it builds
// offline): it connects, prints READY once the ready text has arrived and one VERDICT line
// saying how the server ended the connection. See tests/referees/referee.py for the protocol.
//
// crypto/tls returns io.EOF both for the server's close_notify and for a bare TCP FIN at a
// record boundary, so the socket under it is watched. Two rules judge an io.EOF and must
// agree:
//   - records: the last record the server sent is its close_notify (TLS 1.3: an encrypted
//     application_data record of 19 bytes, 2 alert bytes + 1 content type + 16 tag; TLS 1.2:
//     an alert record);
//   - order: crypto/tls reads the socket only for a record it still needs, so an io.EOF that
//     comes before the socket itself returned EOF was made by the alert, one after it by the
//     FIN.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const tls13CloseNotifyLen = 19

// watched records what the server sent on the raw socket: the headers of its records, and
// whether the socket returned EOF.
type watched struct {
	net.Conn
	mu       sync.Mutex
	pending  []byte
	lastType byte
	lastLen  int
	records  int
	sawEOF   bool
}

func (w *watched) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, p[:n]...)
	for len(w.pending) >= 5 {
		length := int(w.pending[3])<<8 | int(w.pending[4])
		if len(w.pending) < 5+length {
			break
		}
		w.lastType, w.lastLen = w.pending[0], length
		w.records++
		w.pending = w.pending[5+length:]
	}
	if errors.Is(err, io.EOF) {
		w.sawEOF = true
	}
	return n, err
}

func (w *watched) state() (byte, int, bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastType, w.lastLen, w.sawEOF, len(w.pending)
}

func verdict(what, detail string) {
	fmt.Printf("VERDICT %s %s\n", what, detail)
}

// judge says what an io.EOF from crypto/tls was.
func judge(w *watched, version uint16) {
	typ, length, sawEOF, partial := w.state()
	alertLast := typ == 21 || (version == tls.VersionTLS13 && typ == 23 && length == tls13CloseNotifyLen)
	switch {
	case partial > 0:
		verdict("bare_fin", fmt.Sprintf("the stream ended inside a record (%d bytes of it)", partial))
	case alertLast && !sawEOF:
		verdict("close_notify", fmt.Sprintf("io.EOF before the socket's EOF; last record type %d length %d", typ, length))
	case !alertLast && sawEOF:
		verdict("bare_fin", fmt.Sprintf("io.EOF after the socket's EOF; last record type %d length %d", typ, length))
	default:
		verdict("error", fmt.Sprintf("the rules disagree: last record type %d length %d, socket EOF first: %v", typ, length, sawEOF))
	}
}

func main() {
	host := flag.String("host", "127.0.0.1", "")
	port := flag.Int("port", 0, "")
	ca := flag.String("ca", "", "")
	ver := flag.String("tls", "1.3", "")
	timeout := flag.Float64("timeout", 15, "")
	closeFirst := flag.Bool("close", false, "")
	readyText := flag.String("ready-text", "hello", "")
	flag.Parse()

	pem, err := os.ReadFile(*ca)
	if err != nil {
		verdict("error", err.Error())
		return
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	version := uint16(tls.VersionTLS13)
	if *ver == "1.2" {
		version = tls.VersionTLS12
	}
	deadline := time.Now().Add(time.Duration(*timeout * float64(time.Second)))
	raw, err := net.DialTimeout("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)), time.Until(deadline))
	if err != nil {
		verdict("error", err.Error())
		return
	}
	w := &watched{Conn: raw}
	conn := tls.Client(w, &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: version, MaxVersion: version})
	conn.SetDeadline(deadline)
	if err := conn.Handshake(); err != nil {
		verdict("error", "handshake: "+err.Error())
		return
	}
	var got []byte
	ready := false
	buf := make([]byte, 65536)
	for {
		if ready && *closeFirst {
			if err := conn.CloseWrite(); err != nil {
				verdict("error", "CloseWrite: "+err.Error())
				return
			}
			*closeFirst = false
		}
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if !ready && bytes.Contains(got, []byte(*readyText)) {
			ready = true
			fmt.Println("READY")
		}
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF):
			judge(w, version)
		case errors.Is(err, syscall.ECONNRESET):
			verdict("reset", err.Error())
		case errors.Is(err, io.ErrUnexpectedEOF):
			verdict("bare_fin", err.Error())
		case errors.As(err, &ne) && ne.Timeout():
			verdict("open", "go: still connected at the timeout")
		default:
			verdict("error", err.Error())
		}
		return
	}
}
