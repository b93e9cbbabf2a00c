package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// Main runs root with args and returns the process exit code. Failures go
// to stderr as "accord: message"; with --json, a command that fails before
// printing its result prints an ErrorObject as the last line of stdout (one
// that printed its result, such as a failed lint or a denied policy, leaves
// that result last and says the rest through the exit code).
func Main(root *cobra.Command, args []string) int {
	Setup(root)
	root.SetArgs(args)
	printed = false
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(root.ErrOrStderr(), root.Name()+":", err)
	if (jsonOut || jsonRequested(args)) && !printed {
		writeError(root.OutOrStdout(), err)
	}
	return ExitCode(err)
}

// jsonRequested reports whether args ask for --json, for failures that
// happen before flag parsing gets to it (an unknown flag before --json).
func jsonRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "--json=true", "--json=1":
			return true
		}
	}
	return false
}

// Setup makes root's tree keep the exit-code contract: flag errors, argument
// errors, missing required flags and unknown or missing subcommands are
// usage errors (exit 2). Call it once the tree is complete.
func Setup(root *cobra.Command) {
	AddGlobalFlags(root)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return Usagef("%w (see %s --help)", err, c.CommandPath())
	})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	exampleCompletion(root)
	walk(root, func(c *cobra.Command) {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args, c.RunE = subcommandArgs, missingSubcommand
			return
		}
		if a := c.Args; a != nil && !isWrapped(c) {
			c.Args = func(c *cobra.Command, args []string) error {
				if err := a(c, args); err != nil {
					return Usagef("%s: %w (usage: %s)", c.CommandPath(), err, c.UseLine())
				}
				return nil
			}
			markWrapped(c)
		}
	})
}

// walk calls fn on c and every command below it.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, s := range c.Commands() {
		walk(s, fn)
	}
}

const wrappedAnnotation = "accord/args-wrapped"

func isWrapped(c *cobra.Command) bool { return c.Annotations[wrappedAnnotation] != "" }

func markWrapped(c *cobra.Command) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[wrappedAnnotation] = "1"
}

// subcommands lists c's visible subcommands' names.
func subcommands(c *cobra.Command) string {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// subcommandArgs rejects what a group command was given in place of one of
// its subcommands.
func subcommandArgs(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q; valid subcommands: %s", args[0], c.CommandPath(), subcommands(c))
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return Usagef("%s", msg)
}

// missingSubcommand runs for a group command given no subcommand: its help
// goes to stderr and the command line is a usage error.
func missingSubcommand(c *cobra.Command, _ []string) error {
	c.SetOut(c.ErrOrStderr())
	c.Help()
	c.SetOut(nil)
	return Usagef("%s needs a subcommand: %s", c.CommandPath(), subcommands(c))
}

// completionExamples show how to load each shell's completion script.
var completionExamples = map[string]string{
	"bash":       "source <(NAME completion bash)",
	"zsh":        `NAME completion zsh > "${fpath[1]}/_NAME"`,
	"fish":       "NAME completion fish > ~/.config/fish/completions/NAME.fish",
	"powershell": "NAME completion powershell | Out-String | Invoke-Expression",
}

// strictHelp makes `help TOPIC` a usage error when TOPIC names no command
// (cobra prints "Unknown help topic" and exits 0).
func strictHelp(root, help *cobra.Command) {
	if help.Run == nil {
		return
	}
	run := help.Run
	help.Run = nil
	help.RunE = func(c *cobra.Command, args []string) error {
		if _, rest, err := root.Find(args); len(args) > 0 && (err != nil || len(rest) > 0) {
			return Usagef("unknown help topic %q; commands: %s", strings.Join(args, " "), subcommands(root))
		}
		run(c, args)
		return nil
	}
}

// exampleCompletion gives cobra's generated completion commands examples,
// like every other command.
func exampleCompletion(root *cobra.Command) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "completion":
			c.Example = "  " + root.Name() + " completion bash > /etc/bash_completion.d/" + root.Name()
			for _, s := range c.Commands() {
				s.Example = "  " + strings.ReplaceAll(completionExamples[s.Name()], "NAME", root.Name())
			}
		case "help":
			c.Example = "  " + root.Name() + " help auction solve"
			strictHelp(root, c)
		}
	}
}
