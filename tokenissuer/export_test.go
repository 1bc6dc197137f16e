package tokenissuer

// SkipProvisionChecks makes the Caddyfile adapter leave the checks that
// Provision repeats to Provision.
func SkipProvisionChecks(skip bool) { skipProvisionChecks = skip }
