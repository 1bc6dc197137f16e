package postgres

// Helpers for the external test package (caddy_test.go).
var (
	NeedServer  = needServer
	FreshSchema = freshSchema
	TestDSN     = testDSN
)
