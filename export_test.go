package openssl

// LiveClientSessions returns how many session references the client session
// caches hold, for the tests of their freeing.
func LiveClientSessions() int64 { return liveSessions.Load() }
