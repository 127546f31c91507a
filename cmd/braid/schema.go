package main

import (
	"github.com/spf13/cobra"

	"github.com/braid-router/braid/api"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of a spec (both kinds), for editors",
		Long: `Print the JSON Schema (draft 2020-12) of a spec file, Router and Peer: the
fields, their types, required fields, allowed values, formats as patterns,
defaults and doc comments. It is the same as api/schema.json in the
repository, which the example specs name in their first line:

  # yaml-language-server: $schema=../api/schema.json

Editors using yaml-language-server (VS Code's YAML extension, Neovim, Helix,
Emacs lsp-mode) then complete fields and flag mistakes as you type. The
schema checks each field on its own; braid validate also checks the rules
that span fields (references, unique names, address families).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(api.JSONSchema())
			return err
		},
	}
}
