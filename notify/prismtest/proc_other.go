//go:build !unix

package prismtest

import "os/exec"

// Without process groups only Prism's own process is stopped.
func ownProcessGroup(*exec.Cmd) {}

func terminateGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
