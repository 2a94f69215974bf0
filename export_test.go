package openssl

// LiveClientSessions returns how many session references the client session
// caches hold, for the tests of their freeing.
func LiveClientSessions() int64 { return liveSessions.Load() }

// CertificateCached reports whether the parsed-certificate cache has an
// entry for der, for the tests of its release.
func CertificateCached(der []byte) bool { return parsedCerts.has(der) }

// Yields returns how many times the Conn's Read and Write directions
// yielded the processor after a time slice without a wait (see schedSlice),
// for the tests of it. Call it while neither direction is in use.
func (c *Conn) Yields() (read, write int) { return c.in.step.slice.yields, c.out.step.slice.yields }
