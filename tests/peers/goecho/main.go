// Command goecho is the Go crypto/tls echo peer for gracetls's interop tests
// (standard library only, so it builds offline).
//
// Protocol (see tests/common/peer.rs): listen on 127.0.0.1, print
// `LISTENING <port>`, serve connections (a goroutine each), echo every line
// except the commands `srv-close` and `srv-truncate`, and print exactly one
// `VERDICT close_notify|bare_fin|error <detail>` line per connection.
//
// Usage: goecho --cert CERT.pem --key KEY.pem --tls 1.3|1.2 [--port N]
//
// crypto/tls returns io.EOF both for the client's close_notify and for a bare
// TCP FIN at a record boundary, so it cannot referee alone. The accepted
// connection is wrapped in a watcher that parses the record headers the
// client sends. Two independent rules judge an io.EOF, and they must agree:
//   - records: the last complete record is the close_notify (TLS 1.3: an
//     encrypted application_data record of length 19 = 2 alert bytes + 1
//     content type + 16 tag; TLS 1.2: an alert record);
//   - order: crypto/tls stops reading the socket once it has a whole record,
//     so an io.EOF that comes before the socket itself returned EOF was
//     produced by the alert; one after it was produced by the FIN.
package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

const (
	recordAlert   = 21
	recordAppData = 23
	// TLS 1.3 close_notify: 2 alert bytes + 1 inner content type + 16 tag.
	tls13CloseNotifyLen = 19
	// How long the server waits for the client's reaction after it ended the
	// connection itself; a silent client must not keep a goroutine forever.
	judgeTimeout     = 15 * time.Second
	handshakeTimeout = 15 * time.Second
)

var commands = [][]byte{[]byte("srv-close"), []byte("srv-truncate")}

var outMu sync.Mutex

// say prints one line at once: os.Stdout is unbuffered, and the lock keeps
// lines from several connections whole.
func say(line string) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintln(os.Stdout, line)
}

func verdict(what, detail string) {
	detail = strings.NewReplacer("\n", " ", "\r", " ").Replace(detail)
	say(strings.TrimSpace("VERDICT " + what + " " + detail))
}

func usage(why string) {
	fmt.Fprintf(os.Stderr, "goecho: %s\nusage: goecho --cert PEM --key PEM --tls 1.3|1.2 [--port N]\n", why)
	os.Exit(2)
}

func main() {
	cert := flag.String("cert", "", "server certificate chain (PEM)")
	key := flag.String("key", "", "server key (PKCS#8 PEM)")
	version := flag.String("tls", "", "the one TLS version to allow: 1.3 or 1.2")
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: any)")
	flag.Parse()
	if *cert == "" || *key == "" || *version == "" {
		usage("--cert, --key and --tls are required")
	}
	var v uint16
	switch *version {
	case "1.3":
		v = tls.VersionTLS13
	case "1.2":
		v = tls.VersionTLS12
	default:
		usage("--tls must be 1.3 or 1.2")
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		usage(err.Error())
	}
	config := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   v,
		MaxVersion:   v,
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "goecho: %v\n", err)
		os.Exit(1)
	}
	say(fmt.Sprintf("LISTENING %d", ln.Addr().(*net.TCPAddr).Port))
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "goecho: accept: %v\n", err)
			os.Exit(1)
		}
		go serve(&watchedConn{TCPConn: c.(*net.TCPConn)}, config, v)
	}
}

// watchedConn parses the TLS record headers of everything the client sends.
// Only the connection's own goroutine reads it, so it needs no lock.
type watchedConn struct {
	*net.TCPConn
	hdr       [5]byte
	hdrN      int
	remaining int
	inRecord  bool
	lastType  byte
	lastLen   int
	records   int
	// The socket itself returned io.EOF (the client's FIN arrived).
	rawEOF bool
}

func (w *watchedConn) Read(p []byte) (int, error) {
	n, err := w.TCPConn.Read(p)
	w.observe(p[:n])
	if err == io.EOF {
		w.rawEOF = true
	}
	return n, err
}

func (w *watchedConn) observe(b []byte) {
	for len(b) > 0 {
		if !w.inRecord {
			k := copy(w.hdr[w.hdrN:], b)
			w.hdrN += k
			b = b[k:]
			if w.hdrN < len(w.hdr) {
				return
			}
			w.hdrN = 0
			w.inRecord = true
			w.remaining = int(w.hdr[3])<<8 | int(w.hdr[4])
		} else {
			k := w.remaining
			if k > len(b) {
				k = len(b)
			}
			w.remaining -= k
			b = b[k:]
		}
		if w.inRecord && w.remaining == 0 {
			w.inRecord = false
			w.lastType = w.hdr[0]
			w.lastLen = int(w.hdr[3])<<8 | int(w.hdr[4])
			w.records++
		}
	}
}

// partial: the stream ended inside a record header or body.
func (w *watchedConn) partial() bool {
	return w.inRecord || w.hdrN > 0
}

// judgeEOF decides what an io.EOF from crypto/tls was: (what, detail).
func (w *watchedConn) judgeEOF(v uint16) (string, string) {
	last := fmt.Sprintf("last client record type %d length %d", w.lastType, w.lastLen)
	if w.partial() {
		return "error", "EOF inside a TLS record; " + last
	}
	var byRecords bool
	if v == tls.VersionTLS13 {
		byRecords = w.lastType == recordAppData && w.lastLen == tls13CloseNotifyLen
	} else {
		byRecords = w.lastType == recordAlert
	}
	byOrder := !w.rawEOF
	switch {
	case byRecords && byOrder:
		return "close_notify", ""
	case !byRecords && !byOrder:
		return "bare_fin", last
	default:
		return "error", fmt.Sprintf("referee rules disagree: records say close_notify=%v, EOF order says close_notify=%v; %s",
			byRecords, byOrder, last)
	}
}

// judge turns the error that ended reading into (what, detail).
func (w *watchedConn) judge(err error, v uint16) (string, string) {
	if err == io.EOF {
		return w.judgeEOF(v)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "error", fmt.Sprintf("no answer within %v", judgeTimeout)
	}
	return "error", err.Error()
}

func serve(w *watchedConn, config *tls.Config, v uint16) {
	conn := tls.Server(w, config)
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := conn.Handshake(); err != nil {
		verdict("error", "handshake: "+err.Error())
		_ = w.TCPConn.Close()
		return
	}
	// Echo connections may idle as long as the test wants.
	_ = conn.SetDeadline(time.Time{})

	var filter lineFilter
	var writeErr error
	buf := make([]byte, 32*1024)
	for {
		n, err := conn.Read(buf)
		var echo bytes.Buffer
		cmd := filter.feed(buf[:n], &echo)
		if echo.Len() > 0 && writeErr == nil {
			// A failed echo (the client is gone) must not hide how the
			// client ended: keep reading, report it with the verdict.
			if _, werr := conn.Write(echo.Bytes()); werr != nil {
				writeErr = werr
			}
		}
		if err != nil {
			what, detail := w.judge(err, v)
			if writeErr != nil {
				detail = strings.TrimSpace(detail + " (echo write failed: " + writeErr.Error() + ")")
			}
			verdict(what, detail)
			if what == "close_notify" {
				// Answer the client's close_notify with ours.
				_ = conn.Close()
			} else {
				_ = w.TCPConn.Close()
			}
			return
		}
		switch cmd {
		case "":
			continue
		case "srv-close":
			if cerr := conn.CloseWrite(); cerr != nil {
				verdict("error", "srv-close: sending close_notify: "+cerr.Error())
				_ = w.TCPConn.Close()
				return
			}
			// crypto/tls leaves TCP open; a FIN after close_notify is what
			// servers do.
			_ = w.TCPConn.CloseWrite()
			judgeAfterServerEnd(conn, w, v, "after srv-close:")
			return
		case "srv-truncate":
			// A FIN with no close_notify before it.
			_ = w.TCPConn.CloseWrite()
			judgeAfterServerEnd(conn, w, v, "after srv-truncate:")
			return
		}
	}
}

// judgeAfterServerEnd reads (discarding) until the client's answer, judges it
// and closes TCP without sending anything more.
func judgeAfterServerEnd(conn *tls.Conn, w *watchedConn, v uint16, context string) {
	_ = conn.SetReadDeadline(time.Now().Add(judgeTimeout))
	buf := make([]byte, 32*1024)
	for {
		if _, err := conn.Read(buf); err != nil {
			what, detail := w.judge(err, v)
			if what == "close_notify" {
				detail = "client answered"
			}
			verdict(what, strings.TrimSpace(context+" "+detail))
			_ = w.TCPConn.Close()
			return
		}
	}
}

// lineFilter passes bytes through at once, except that at the start of a
// line it holds back what could still become a command line (`srv-close` or
// `srv-truncate`, optionally with CR), so a command is never echoed and bulk
// data is never held.
type lineFilter struct {
	held        []byte
	passthrough bool
}

// feed appends what to echo to out; it returns the command when a command
// line completed (bytes after it in b are dropped: the server stops echoing).
func (f *lineFilter) feed(b []byte, out *bytes.Buffer) string {
	for _, c := range b {
		if f.passthrough {
			out.WriteByte(c)
			if c == '\n' {
				f.passthrough = false
			}
			continue
		}
		f.held = append(f.held, c)
		if c == '\n' {
			line := bytes.TrimSuffix(bytes.TrimSuffix(f.held, []byte("\n")), []byte("\r"))
			for _, cmd := range commands {
				if bytes.Equal(line, cmd) {
					f.held = f.held[:0]
					return string(cmd)
				}
			}
			out.Write(f.held)
			f.held = f.held[:0]
		} else if !couldBeCommand(f.held) {
			out.Write(f.held)
			f.held = f.held[:0]
			f.passthrough = true
		}
	}
	return ""
}

func couldBeCommand(h []byte) bool {
	for _, cmd := range commands {
		if bytes.HasPrefix(cmd, h) {
			return true
		}
		if len(h) == len(cmd)+1 && h[len(cmd)] == '\r' && bytes.HasPrefix(h, cmd) {
			return true
		}
	}
	return false
}
