package ident_test

import (
	"fmt"

	"github.com/landlordhq/landlord/internal/ident"
)

func ExampleQuote() {
	fmt.Println("DELETE FROM " + ident.Quote("t_0123", "items") + " WHERE tenant_id = $1")
	// Output: DELETE FROM "t_0123"."items" WHERE tenant_id = $1
}

func ExampleLiteral() {
	fmt.Println("COMMENT ON SCHEMA " + ident.Quote("t_0123") + " IS " + ident.Literal("the shop's tables"))
	// Output: COMMENT ON SCHEMA "t_0123" IS 'the shop''s tables'
}
