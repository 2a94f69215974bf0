package tlstest

import (
	"bytes"
	"errors"
	"net"
	"sync"
)

// Recorder is a peer's socket as its TLS layer sees it: it keeps a copy of
// every byte read, so that tests can look at the raw records.
type Recorder struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer // protected by mu
}

// NewRecorder returns a Recorder reading from c.
func NewRecorder(c net.Conn) *Recorder { return &Recorder{Conn: c} }

func (r *Recorder) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.mu.Lock()
	r.buf.Write(b[:n])
	r.mu.Unlock()
	return n, err
}

// Mark returns the number of bytes read so far.
func (r *Recorder) Mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Len()
}

// Since returns a copy of the bytes read after mark m.
func (r *Recorder) Since(m int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes()[m:])
}

// errBadRecord is returned by Records for bytes that end inside a record.
var errBadRecord = errors.New("tlstest: partial TLS record")

// Records splits raw TLS records into their content types and lengths. It
// returns an error if raw ends inside a record.
func Records(raw []byte) (types []byte, lengths []int, err error) {
	for len(raw) > 0 {
		if len(raw) < 5 {
			return types, lengths, errBadRecord
		}
		n := int(raw[3])<<8 | int(raw[4])
		if len(raw) < 5+n {
			return types, lengths, errBadRecord
		}
		types = append(types, raw[0])
		lengths = append(lengths, n)
		raw = raw[5+n:]
	}
	return types, lengths, nil
}
