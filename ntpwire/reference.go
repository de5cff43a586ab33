package ntpwire

// Reference is what a server says about its own clock in every reply: the
// header fields that do not depend on the request. The server's time
// source fills it; the server copies it into replies.
type Reference struct {
	Leap           Leap
	Stratum        uint8 // 1–15 when synchronized, MaxStratum when not
	Precision      int8  // log2 seconds
	RefID          RefID
	RefTime        Time // when the clock was last set or corrected
	RootDelay      Short
	RootDispersion Short
}

// Synchronized reports whether r describes a clock clients may trust:
// leap is not LeapAlarm and the stratum is 1–15.
func (r Reference) Synchronized() bool {
	return r.Leap != LeapAlarm && r.Stratum >= 1 && r.Stratum < MaxStratum
}
