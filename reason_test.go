package openssl_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
)

// reasonAlertHandshakeFailure is OpenSSL's reason code for a
// handshake_failure alert from the peer (SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
// SSL_AD_REASON_OFFSET 1000 plus the alert's number, 40). Its text changed
// in OpenSSL 3.2, from "sslv3 alert handshake failure" to "ssl/tls alert
// handshake failure", so tests match the code.
const reasonAlertHandshakeFailure = 1040

// errLibSSL is ERR_LIB_SSL, the library of libssl's reasons.
const errLibSSL = 20

// requireReasonCode is requireReason for a libssl reason given by its code,
// where the reason's text differs between OpenSSL versions.
func requireReasonCode(t testing.TB, err error, op string, reason int) *openssl.Error {
	t.Helper()
	e := asError(t, err)
	require.Equal(t, op, e.Op, "Op of %v", err)
	found := false
	for _, q := range e.Queue {
		if q.Lib == errLibSSL && q.Reason == reason {
			found = true
			require.Contains(t, err.Error(), q.ReasonText)
		}
	}
	require.Truef(t, found, "no libssl reason %d in the queue of %v", reason, err)
	require.True(t, strings.HasPrefix(err.Error(), "openssl: "+op+": "), err.Error())
	return e
}
