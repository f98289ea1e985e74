package federation

import (
	"strconv"
	"strings"
)

func itoa(i int) string               { return strconv.Itoa(i) }
func joinProblems(ps []string) string { return strings.Join(ps, "; ") }
