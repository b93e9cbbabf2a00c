package wdp

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// WriteLP writes the instance as a binary integer program in CPLEX LP
// format (read by CBC and by glpsol --lp): maximise the total price subject
// to one packing row per good.
func WriteLP(w io.Writer, in *Instance) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "Maximize")
	fmt.Fprint(bw, " obj:")
	for j, b := range in.Bids {
		fmt.Fprintf(bw, " + %s x%d", strconv.FormatFloat(b.Price, 'g', -1, 64), j)
		if j%8 == 7 {
			fmt.Fprintln(bw)
		}
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "Subject To")
	rows := make([][]int, in.Goods)
	for j, b := range in.Bids {
		for _, g := range b.Goods {
			rows[g] = append(rows[g], j)
		}
	}
	for g, r := range rows {
		if len(r) == 0 {
			continue
		}
		fmt.Fprintf(bw, " g%d:", g)
		for k, j := range r {
			fmt.Fprintf(bw, " + x%d", j)
			if k%16 == 15 {
				fmt.Fprintln(bw)
			}
		}
		fmt.Fprintln(bw, " <= 1")
	}
	fmt.Fprintln(bw, "Binary")
	for j := range in.Bids {
		fmt.Fprintf(bw, " x%d", j)
		if j%16 == 15 {
			fmt.Fprintln(bw)
		}
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "End")
	return bw.Flush()
}
