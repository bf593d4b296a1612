// Package crdbcompat checks that the SQL Hookline's CockroachDB store sends
// is accepted by CockroachDB's own SQL parser
// (github.com/cockroachdb/cockroachdb-parser), although the store's tests run
// against PostgreSQL. It is a separate module so that the parser and its
// dependencies stay out of the workspace and the production binaries.
package crdbcompat

import (
	"errors"
	"fmt"
	"strings"

	crdberrors "github.com/cockroachdb/errors"

	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/parser"
	// Registers the PL/pgSQL parser that the SQL parser calls for the body
	// of a DO block, as CockroachDB does; without it such a statement
	// makes the parser dereference a nil function.
	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/parser/statements"
	_ "github.com/cockroachdb/cockroachdb-parser/pkg/sql/plpgsql/parser"
	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/sem/tree"
)

// ParseStatement parses sql, which must hold exactly one SQL statement, with
// CockroachDB's parser and returns nil if CockroachDB accepts its syntax.
// Otherwise the error carries the parser's message together with its detail
// (the statement with a caret under the offending token) and hints.
//
// Parsing proves syntax only: an unknown function, type or setting that
// parses is not detected.
func ParseStatement(sql string) error {
	_, err := ParseOne(sql)
	return err
}

// ParseOne is ParseStatement returning the statement's syntax tree.
func ParseOne(sql string) (tree.Statement, error) {
	stmts, err := ParseAll(sql)
	if err != nil {
		return nil, err
	}
	if len(stmts) != 1 {
		return nil, fmt.Errorf("crdbcompat: want exactly 1 statement, found %d", len(stmts))
	}
	return stmts[0], nil
}

// ParseAll parses sql, which must hold one or more statements separated by
// semicolons (as a simple-protocol query may), with CockroachDB's parser and
// returns their syntax trees; the error is formatted as by ParseStatement.
func ParseAll(sql string) (_ []tree.Statement, err error) {
	defer func() {
		// The generated parser has panicked on inputs before; report a
		// panic as a rejection rather than crash the whole test binary.
		if r := recover(); r != nil {
			err = fmt.Errorf("crdbcompat: parser panicked: %v", r)
		}
	}()
	parsed, err := parser.Parse(sql)
	if err != nil {
		return nil, describe(err)
	}
	if len(parsed) == 0 {
		return nil, errors.New("crdbcompat: no statement")
	}
	return asts(parsed), nil
}

func asts(parsed statements.Statements) []tree.Statement {
	out := make([]tree.Statement, len(parsed))
	for i, s := range parsed {
		out[i] = s.AST
	}
	return out
}

// describe flattens a CockroachDB error (message, details, hints) into a
// plain error whose Error() shows all of it.
func describe(err error) error {
	var b strings.Builder
	b.WriteString(err.Error())
	if d := crdberrors.FlattenDetails(err); d != "" {
		b.WriteString("\nDETAIL: ")
		b.WriteString(d)
	}
	if h := crdberrors.FlattenHints(err); h != "" {
		b.WriteString("\nHINT: ")
		b.WriteString(h)
	}
	return errors.New(b.String())
}

// HashSharded reports whether stmt creates a hash-sharded index or primary
// key (`USING HASH`): CREATE INDEX, an index, unique constraint, primary key
// or column primary key in CREATE TABLE, or ALTER TABLE adding one or
// altering the primary key.
func HashSharded(stmt tree.Statement) bool {
	switch s := stmt.(type) {
	case *tree.CreateIndex:
		return s.Sharded != nil
	case *tree.CreateTable:
		for _, def := range s.Defs {
			if tableDefHashSharded(def) {
				return true
			}
		}
	case *tree.AlterTable:
		for _, cmd := range s.Cmds {
			switch c := cmd.(type) {
			case *tree.AlterTableAlterPrimaryKey:
				if c.Sharded != nil {
					return true
				}
			case *tree.AlterTableAddConstraint:
				if tableDefHashSharded(c.ConstraintDef) {
					return true
				}
			}
		}
	}
	return false
}

func tableDefHashSharded(def tree.TableDef) bool {
	switch d := def.(type) {
	case *tree.IndexTableDef:
		return d.Sharded != nil
	case *tree.UniqueConstraintTableDef:
		return d.Sharded != nil
	case *tree.ColumnTableDef:
		return d.PrimaryKey.Sharded
	}
	return false
}

// ModifiedTables returns the table modified by each data-modifying
// statement within stmt (INSERT, UPSERT, UPDATE, DELETE): stmt itself, its
// common table expressions (WITH), nested ones, and statement sources in
// FROM clauses (CockroachDB's `[INSERT ... RETURNING ...]`), in the order
// found; a table modified twice appears twice. Names are unqualified.
//
// CockroachDB refuses a statement that modifies one table more than once
// ("multiple modification subqueries of the same table ... are not
// supported") unless the cluster setting
// sql.multiple_modifications_of_table.enabled is on, which Hookline does
// not require; PostgreSQL accepts such statements, so only this check
// catches them before a run on a cluster.
func ModifiedTables(stmt tree.Statement) []string {
	var w modWalker
	w.statement(stmt)
	return w.tables
}

// ModifiesTableTwice reports a table that stmt modifies more than once
// (see ModifiedTables), or "" if there is none.
func ModifiesTableTwice(stmt tree.Statement) string {
	seen := map[string]bool{}
	for _, t := range ModifiedTables(stmt) {
		if seen[t] {
			return t
		}
		seen[t] = true
	}
	return ""
}

// modWalker collects the tables modified within a statement.
type modWalker struct{ tables []string }

func (w *modWalker) statement(stmt tree.Statement) {
	switch s := stmt.(type) {
	case *tree.Insert:
		w.with(s.With)
		w.target(s.Table)
		if s.Rows != nil {
			w.selectNode(s.Rows)
		}
	case *tree.Update:
		w.with(s.With)
		w.target(s.Table)
		w.tableExprs(s.From)
	case *tree.Delete:
		w.with(s.With)
		w.target(s.Table)
		w.tableExprs(s.Using)
	case *tree.Select:
		w.selectNode(s)
	case *tree.ParenSelect:
		w.selectNode(s.Select)
	}
}

func (w *modWalker) with(with *tree.With) {
	if with == nil {
		return
	}
	for _, cte := range with.CTEList {
		w.statement(cte.Stmt)
	}
}

func (w *modWalker) selectNode(s *tree.Select) {
	if s == nil {
		return
	}
	w.with(s.With)
	w.selectStatement(s.Select)
}

func (w *modWalker) selectStatement(s tree.SelectStatement) {
	switch s := s.(type) {
	case *tree.ParenSelect:
		w.selectNode(s.Select)
	case *tree.SelectClause:
		w.tableExprs(s.From.Tables)
	case *tree.UnionClause:
		w.selectNode(s.Left)
		w.selectNode(s.Right)
	}
}

func (w *modWalker) tableExprs(exprs tree.TableExprs) {
	for _, e := range exprs {
		w.tableExpr(e)
	}
}

func (w *modWalker) tableExpr(e tree.TableExpr) {
	switch e := e.(type) {
	case *tree.AliasedTableExpr:
		w.tableExpr(e.Expr)
	case *tree.ParenTableExpr:
		w.tableExpr(e.Expr)
	case *tree.JoinTableExpr:
		w.tableExpr(e.Left)
		w.tableExpr(e.Right)
	case *tree.StatementSource:
		w.statement(e.Statement)
	case *tree.Subquery:
		w.selectStatement(e.Select)
	}
}

// target records the table a data-modifying statement writes.
func (w *modWalker) target(e tree.TableExpr) {
	if a, ok := e.(*tree.AliasedTableExpr); ok {
		e = a.Expr
	}
	switch t := e.(type) {
	case *tree.TableName:
		w.tables = append(w.tables, t.Table())
	case *tree.UnresolvedObjectName:
		w.tables = append(w.tables, t.Object())
	default:
		w.tables = append(w.tables, tree.AsString(e))
	}
}
