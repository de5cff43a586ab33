// Package interop holds ntpkit's interoperability tests: they run real NTP
// programs from Debian (chronyd in client-only -Q mode or as a loopback
// server with -x, ntpdig) against ntpkit on loopback. Outside CI a missing
// program skips its test; with CI set it fails it. The package has no
// non-test code beyond helpers for those tests.
package interop
