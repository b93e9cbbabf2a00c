package models_test

import (
	"fmt"

	"github.com/accordmesh/accord/models"
)

func ExampleConstraint_Best() {
	c, err := models.ParseConstraint("^1.2")
	if err != nil {
		panic(err)
	}
	var vs []models.Version
	for _, s := range []string{"1.1.9", "1.2.0", "1.4.2", "2.0.0"} {
		v, _ := models.ParseVersion(s)
		vs = append(vs, v)
	}
	best, ok := c.Best(vs)
	fmt.Println(best, ok)
	// Output: 1.4.2 true
}

func ExampleCheckLicense() {
	fmt.Println(models.CheckLicense("MIT OR Apache-2.0"))
	fmt.Println(models.CheckLicense("MIT OR"))
	// Output:
	// <nil>
	// "MIT OR" is not an SPDX expression: expression ends early
}
