package ingest

import (
	"fmt"
	"sort"
	"strings"

	"github.com/privalytics/privalytics"
)

// Preset is a ready mapping for one source system's export into the default
// retail schema (privalytics.DefaultRetailSchema). Every preset keeps only what
// the schema declares: names, addresses, phone numbers and card details in the
// exports are not imported. Each is tested on a sample file in
// testdata/presets that follows the export's layout.
type Preset struct {
	// Name is what `privalytics ingest --mapping` and POST /v1/imports?mapping= take.
	Name string
	// Expects describes the export the preset reads and how to get it.
	Expects string
	// Mapping builds the mapping; each call returns a fresh copy to change.
	Mapping func() Mapping
}

// Presets returns the presets by name.
func Presets() []Preset {
	ps := []Preset{
		{"uci-online-retail", "the UCI Online Retail data set (online_retail_uci.csv): InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country", UCIOnlineRetailMapping},
		{"shopify-orders", "Shopify admin → Orders → Export → \"CSV for Excel, Numbers, or other spreadsheet programs\": one line per line item; the order's Email, Financial Status, Created at and other order details only on its first line", ShopifyOrdersMapping},
		{"stripe-payments", "Stripe Dashboard → Payments → Export (unified_payments.csv, default columns): one line per payment, Created date (UTC), Amount, Status, Customer ID, Card Issue Country", StripePaymentsMapping},
		{"woocommerce-orders", "WooCommerce → Customer/Order/Coupon Export, orders as CSV, \"one row per item\": order_number, order_date, status, billing_email, billing_country, item_sku, item_quantity, item_total", WooCommerceOrdersMapping},
		{"square-transactions", "Square Dashboard → Transactions → Export → Transactions CSV: one line per payment or refund, Date and Time in the location's zone, money as $1,234.50, Customer ID for customers on file", SquareTransactionsMapping},
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps
}

// PresetMapping returns the mapping of the named preset.
func PresetMapping(name string) (Mapping, error) {
	var names []string
	for _, p := range Presets() {
		if p.Name == name {
			return p.Mapping(), nil
		}
		names = append(names, p.Name)
	}
	return Mapping{}, privalytics.Errorf(privalytics.EINVALID, "unknown mapping preset %q; use one of %s, or a JSON mapping", name, strings.Join(names, ", "))
}

// ShopifyOrdersMapping reads Shopify's orders export (one line per line item).
// Shopify writes the order's details (Email, Financial Status, Created at,
// Billing Country, Source, Cancelled at) on its first line only, so they are
// filled down within the order (the Name column, "#1001"). customer_id = Email
// (orders without one, such as some POS sales, are skipped and counted); ts =
// Created at (it carries its offset); type = refund for refunded orders, else
// purchase; amount = Lineitem price × Lineitem quantity, negative for refunded
// orders; product = Lineitem sku; order_id = Name; channel from Source (pos →
// store, the apps → app, else web); country = Billing Country. Voided and
// pending orders and cancelled orders are skipped and counted.
func ShopifyOrdersMapping() Mapping {
	refunded := &Condition{Column: "Financial Status", In: []string{"refunded"}}
	return Mapping{
		SkipMissingSubject: true,
		FillDown:           &FillDown{Group: "Name", Columns: []string{"Email", "Financial Status", "Created at", "Billing Country", "Source", "Cancelled at"}},
		Skip: []RowFilter{
			{Condition: Condition{Column: "Financial Status", In: []string{"voided", "pending", "expired"}}, Reason: "unpaid order (voided, pending or expired)"},
			{Condition: Condition{Column: "Cancelled at", NotIn: []string{""}}, Reason: "cancelled order"},
		},
		Fields: map[string]FieldSource{
			"customer_id": {Column: "Email"},
			"ts":          {Column: "Created at", Format: "2006-01-02 15:04:05 -0700"},
			"type": {Column: "Financial Status", Map: map[string]string{
				"paid": privalytics.EventPurchase, "partially_paid": privalytics.EventPurchase, "authorized": privalytics.EventPurchase,
				"partially_refunded": privalytics.EventPurchase, "refunded": privalytics.EventRefund}},
			"order_id": {Column: "Name"},
			"product":  {Column: "Lineitem sku"},
			"quantity": {Column: "Lineitem quantity"},
			"amount":   {Column: "Lineitem price", Times: "Lineitem quantity", NegateIf: refunded},
			"channel":  {Column: "Source", Map: map[string]string{"web": "web", "pos": "store", "iphone": "app", "android": "app"}, Default: "web"},
			"country":  {Column: "Billing Country"},
		},
	}
}

// StripePaymentsMapping reads Stripe's payments export (unified_payments.csv,
// one line per payment). customer_id = Customer ID (payments without a Stripe
// customer are skipped and counted); ts = Created date (UTC); type = refund for
// Refunded payments, else purchase; amount = Amount, negative for refunds;
// order_id = id; country = Card Issue Country; channel = web. Failed payments
// and payments never captured are skipped and counted.
func StripePaymentsMapping() Mapping {
	return Mapping{
		SkipMissingSubject: true,
		Skip: []RowFilter{
			{Condition: Condition{Column: "Status", In: []string{"Failed"}}, Reason: "failed payment"},
			{Condition: Condition{Column: "Captured", In: []string{"false"}}, Reason: "payment not captured"},
		},
		Fields: map[string]FieldSource{
			"customer_id": {Column: "Customer ID"},
			"ts":          {Column: "Created date (UTC)", Format: "2006-01-02 15:04:05", Formats: []string{"2006-01-02 15:04"}, TimeZone: "UTC"},
			"type": {Column: "Status", Map: map[string]string{
				"Paid": privalytics.EventPurchase, "Partially Refunded": privalytics.EventPurchase, "Refunded": privalytics.EventRefund}},
			"order_id": {Column: "id"},
			"amount":   {Column: "Amount", Strip: ",", NegateIf: &Condition{Column: "Status", In: []string{"Refunded"}}},
			"channel":  {Const: "web"},
			"country":  {Column: "Card Issue Country"},
		},
	}
}

// WooCommerceOrdersMapping reads WooCommerce's order export with one row per
// line item. customer_id = billing_email (guest orders have one too); ts =
// order_date in the shop's time zone (set Mapping.TimeZone, --time-zone;
// default UTC); type = refund for refunded orders, else purchase; amount =
// item_total (the line after discounts), negative for refunds; product =
// item_sku; quantity = item_quantity; order_id = order_number; country =
// billing_country; channel = web. Orders never paid (pending, on-hold,
// cancelled, failed, drafts) are skipped and counted.
func WooCommerceOrdersMapping() Mapping {
	return Mapping{
		SkipMissingSubject: true,
		Skip: []RowFilter{
			{Condition: Condition{Column: "status", In: []string{"pending", "on-hold", "cancelled", "failed", "checkout-draft", "trash"}}, Reason: "unpaid order (pending, on-hold, cancelled, failed or draft)"},
		},
		Fields: map[string]FieldSource{
			"customer_id": {Column: "billing_email"},
			"ts":          {Column: "order_date", Format: "2006-01-02 15:04:05", Formats: []string{"2006-01-02 15:04"}},
			"type": {Column: "status", Map: map[string]string{
				"completed": privalytics.EventPurchase, "processing": privalytics.EventPurchase, "refunded": privalytics.EventRefund}},
			"order_id": {Column: "order_number"},
			"product":  {Column: "item_sku"},
			"quantity": {Column: "item_quantity"},
			"amount":   {Column: "item_total", Strip: ",", NegateIf: &Condition{Column: "status", In: []string{"refunded"}}},
			"channel":  {Const: "web"},
			"country":  {Column: "billing_country"},
		},
	}
}

// SquareTransactionsMapping reads Square's transactions export (one line per
// payment or refund). customer_id = Customer ID (sales to customers not on
// file are skipped and counted); ts = Date and Time, in the location's zone
// (set Mapping.TimeZone, --time-zone: the export's "Time Zone" column uses
// Square's own names; default UTC), dates as 2024-03-05 or 03/05/2024; type
// from Event Type (Payment → purchase, Refund → refund); amount = Net Sales
// with the currency symbol and separators removed (refunds are negative in the
// export); store = Location; channel from Source (Point of Sale → store, online
// sources → web); order_id = Transaction ID. Transactions whose status is not
// Complete are skipped and counted.
func SquareTransactionsMapping() Mapping {
	return Mapping{
		SkipMissingSubject: true,
		Skip: []RowFilter{
			{Condition: Condition{Column: "Transaction Status", NotIn: []string{"Complete"}}, Reason: "transaction not complete"},
		},
		Fields: map[string]FieldSource{
			"customer_id": {Column: "Customer ID"},
			"ts": {Column: "Date", With: []string{"Time"}, Format: "2006-01-02 15:04:05",
				Formats: []string{"01/02/2006 15:04:05", "1/2/2006 15:04:05", "01/02/2006 15:04", "1/2/2006 15:04"}},
			"type":     {Column: "Event Type", Map: map[string]string{"Payment": privalytics.EventPurchase, "Refund": privalytics.EventRefund}},
			"order_id": {Column: "Transaction ID"},
			"amount":   {Column: "Net Sales", Strip: "$£€, "},
			"store":    {Column: "Location"},
			"channel": {Column: "Source", Map: map[string]string{
				"Point of Sale": "store", "Square Online": "web", "eCommerce API": "web", "Invoices": "web", "Virtual Terminal": "store"}, Default: "store"},
		},
	}
}

// PresetHelp lists the presets, one a line, for help texts.
func PresetHelp() string {
	var b strings.Builder
	for _, p := range Presets() {
		fmt.Fprintf(&b, "  %-20s %s\n", p.Name, p.Expects)
	}
	return b.String()
}
