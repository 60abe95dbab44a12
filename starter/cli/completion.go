package cli

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/dunningco/dunning/starter/intake"
)

// flagValues are the values offered after a flag that takes one of a few.
var flagValues = map[string]func() []string{
	"o":      func() []string { return []string{formatTable, formatJSON} },
	"format": func() []string { return []string{formatTable, formatJSON} },
	"kind":   func() []string { return []string{"pre-due", "card-expiry"} },
	"status": func() []string { return []string{"pending", "delivered", "failed", "skipped"} },
	"phase": func() []string {
		out := make([]string, len(intake.Phases))
		for i, p := range intake.Phases {
			out[i] = string(p)
		}
		return out
	},
}

// completion prints a completion script for bash or zsh, made from the
// dispatcher's table: every command, subcommand and flag, and the values of
// the flags that take one of a few.
func (a *app) completion(_ context.Context, args []string) error {
	if a.describe != nil {
		return errDescribed // no flags: the shell is an argument
	}
	if len(args) != 1 || isHelp(args[0]) {
		if len(args) == 1 {
			fmt.Fprint(a.stdout, completionHelp)
			return errHelpShown
		}
		return usagef("name the shell: dunning completion bash, or dunning completion zsh")
	}
	script, err := a.bashCompletion()
	if err != nil {
		return err
	}
	switch args[0] {
	case "bash":
		fmt.Fprint(a.stdout, script)
	case "zsh":
		// zsh runs bash completion functions through bashcompinit.
		fmt.Fprint(a.stdout, "#compdef dunning\nautoload -U +X bashcompinit && bashcompinit\n"+script)
	default:
		return usagef("no completion for %q; use bash or zsh", args[0])
	}
	return nil
}

const completionHelp = `Usage: dunning completion bash|zsh

Prints a completion script for commands, subcommands, flags and flag values.

  bash:  source <(dunning completion bash)      (or save it in
         /etc/bash_completion.d/dunning)
  zsh:   source <(dunning completion zsh)       (or save it as _dunning in
         a directory of $fpath)
`

// flagsOf lists a command's flags as "-name", found by running it in
// describe mode: it defines its flags and stops before doing anything.
func (a *app) flagsOf(c command) ([]string, error) {
	var names []string
	sub := &app{stdout: a.stdout, stderr: a.stderr, getenv: a.getenv, cmds: a.cmds, describe: func(fs *flagSet) {
		fs.VisitAll(func(f *flag.Flag) { names = append(names, "-"+f.Name) })
	}}
	if err := c.run(sub, context.Background(), nil); err != errDescribed {
		return nil, fmt.Errorf("describe the flags of %s: %v", c.name, err)
	}
	slices.Sort(names)
	return names, nil
}

func (a *app) bashCompletion() (string, error) {
	var b strings.Builder
	b.WriteString(`# bash completion for dunning, made by "dunning completion bash".
_dunning() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local cmd="${COMP_WORDS[1]}" sub="${COMP_WORDS[2]}"
    case "$prev" in
`)
	keys := make([]string, 0, len(flagValues))
	for k := range flagValues {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "        -%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", k, strings.Join(flagValues[k](), " "))
	}
	b.WriteString(`        -f) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ $COMP_CWORD -eq 1 ]]; then
`)
	var top []string
	for _, c := range a.cmds {
		top = append(top, c.name)
	}
	fmt.Fprintf(&b, "        COMPREPLY=($(compgen -W %q -- \"$cur\")); return\n    fi\n    case \"$cmd\" in\n", strings.Join(top, " "))
	for _, c := range a.cmds {
		switch {
		case c.name == "completion":
			fmt.Fprintf(&b, "        completion) COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")) ;;\n")
		case c.subs != nil:
			fmt.Fprintf(&b, "        %s)\n            if [[ $COMP_CWORD -eq 2 ]]; then\n                COMPREPLY=($(compgen -W %q -- \"$cur\")); return\n            fi\n            case \"$sub\" in\n",
				c.name, strings.ReplaceAll(subNames(c.subs), ",", ""))
			for _, s := range c.subs {
				flags, err := a.flagsOf(s)
				if err != nil {
					return "", err
				}
				fmt.Fprintf(&b, "                %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", s.name, strings.Join(flags, " "))
			}
			b.WriteString("            esac ;;\n")
		case c.run != nil:
			flags, err := a.flagsOf(c)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c.name, strings.Join(flags, " "))
		}
	}
	b.WriteString("    esac\n}\ncomplete -F _dunning dunning\n")
	return b.String(), nil
}
