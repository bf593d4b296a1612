package cli

import (
	"context"
	"fmt"
	"math"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
)

// listFlags are the paging flags shared by every list command.
type listFlags struct {
	limit     int
	all       bool
	pageToken string
}

func addListFlags(fs *pflag.FlagSet, lf *listFlags) {
	fs.IntVar(&lf.limit, "limit", 0, "results per page; 0 uses the server's default")
	fs.BoolVar(&lf.all, "all", false, "follow page tokens and print every page")
	fs.StringVar(&lf.pageToken, "page-token", "", "start at this page token (printed after a partial list)")
}

func (lf *listFlags) pageSize() (int32, error) {
	if lf.limit < 0 || lf.limit > math.MaxInt32 {
		return 0, fmt.Errorf("--limit %d: out of range", lf.limit)
	}
	return int32(lf.limit), nil
}

// pageFetcher fetches one page: the items and the next page token.
type pageFetcher[T proto.Message] func(ctx context.Context, pageSize int32, token string) ([]T, string, error)

// list fetches one page, or every page with --all, and prints the items: as
// a table in text mode (after the last page), or one JSON object per item as
// pages arrive. When more pages remain without --all, the next page token is
// printed to standard error.
func list[T proto.Message](ctx context.Context, c *client, lf *listFlags, header []string, row func(T) []string, fetch pageFetcher[T]) error {
	size, err := lf.pageSize()
	if err != nil {
		return err
	}
	var rows [][]string
	var more string // next page token left unfollowed
	token := lf.pageToken
	for {
		items, next, err := fetch(ctx, size, token)
		if err != nil {
			return rpcError(err)
		}
		for _, it := range items {
			if c.out.json {
				if err := c.out.jsonLine(it); err != nil {
					return err
				}
				continue
			}
			rows = append(rows, row(it))
		}
		if next == "" {
			break
		}
		if !lf.all {
			more = next
			break
		}
		if next == token {
			return fmt.Errorf("server returned the same page token %q twice", next)
		}
		token = next
	}
	if !c.out.json {
		if err := c.out.table(header, rows); err != nil {
			return err
		}
	}
	if more != "" {
		fmt.Fprintf(c.out.errw, "more results: --page-token %s (or --all)\n", more)
	}
	return nil
}
