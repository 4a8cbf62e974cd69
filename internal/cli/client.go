package cli

import (
	"context"
	"io"
)

func clientCommand(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	return ErrUsage
}
