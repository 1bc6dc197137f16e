package tokenissuer

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "apiaccess-hash-password",
		Usage: "[--algorithm argon2id|bcrypt]",
		Short: "Prints a password hash for a token_issuer directory file",
		Long: `Reads a password (prompted twice on a terminal, or the first line of
standard input) and prints a hash for the password_hash field of a user
in a token_issuer directory file. argon2id (default) or bcrypt.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringP("algorithm", "a", "argon2id", "argon2id or bcrypt")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdHashPassword)
		},
	})
}

func cmdHashPassword(fl caddycmd.Flags) (int, error) {
	alg := fl.String("algorithm")
	var pw string
	if term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprint(os.Stderr, "Password: ")
		a, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return 1, err
		}
		fmt.Fprint(os.Stderr, "Again: ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return 1, err
		}
		if string(a) != string(b) {
			return 1, errors.New("the passwords differ")
		}
		pw = string(a)
	} else {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return 1, fmt.Errorf("reading the password from standard input: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if pw == "" {
		return 1, errors.New("empty password")
	}
	var h string
	var err error
	switch alg {
	case "argon2id":
		h, err = directory.HashArgon2id(pw)
	case "bcrypt":
		h, err = directory.HashBcrypt(pw)
	default:
		return 1, fmt.Errorf("unknown algorithm %q (argon2id or bcrypt)", alg)
	}
	if err != nil {
		return 1, err
	}
	fmt.Println(h)
	return 0, nil
}
