package broker

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// maxSecretFile bounds a password file: a password is a line, not a file.
const maxSecretFile = 4 << 10

// readSecret reads a one-line secret from file, without a trailing
// newline. Errors name the file, never its content.
func readSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s: larger than %d bytes, not a password", file, maxSecretFile)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: empty", file)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", errors.New(file + ": more than one line")
	}
	return s, nil
}
