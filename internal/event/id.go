package event

import (
	"crypto/rand"
	// Under another name: hex is encode.go's digit table.
	enchex "encoding/hex"
)

// NewID returns a random UUID (version 4): the messageId of an event sent
// without one, and the id of a privacy request.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var id [36]byte
	enchex.Encode(id[0:8], b[0:4])
	enchex.Encode(id[9:13], b[4:6])
	enchex.Encode(id[14:18], b[6:8])
	enchex.Encode(id[19:23], b[8:10])
	enchex.Encode(id[24:], b[10:])
	id[8], id[13], id[18], id[23] = '-', '-', '-', '-'
	return string(id[:])
}
