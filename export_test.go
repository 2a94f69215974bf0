package openssl

// LiveClientSessions returns how many session references the client session
// caches hold, for the tests of their freeing.
func LiveClientSessions() int64 { return liveSessions.Load() }

// CertificateCached reports whether the parsed-certificate cache has an
// entry for der, for the tests of its release.
func CertificateCached(der []byte) bool { return parsedCerts.has(der) }
