package wire

// Notice answers GET /v1/privacy-notice?format=json: the tenant's
// plain-language privacy notice, generated from its configuration.
type Notice struct {
	Business     string           `json:"business"`
	TenantID     string           `json:"tenant_id"`
	Collected    []NoticeField    `json:"collected"`
	NotCollected string           `json:"not_collected"`
	Purposes     []NoticePurpose  `json:"purposes"`
	Protection   NoticeProtection `json:"protection"`
	Retention    string           `json:"retention"` // the period, or "not set"
	Processors   []string         `json:"processors"`
	Rights       []NoticeRight    `json:"rights"`
	Audit        string           `json:"audit"`
	StrayData    string           `json:"stray_data"` // reject or redact
	Budget       Cost             `json:"budget"`
}

// NoticeField is one collected field and how it is handled.
type NoticeField struct {
	Name     string `json:"name"`
	What     string `json:"what"`
	Handling string `json:"handling"`
}

// NoticePurpose is one declared purpose with its consent policy.
type NoticePurpose struct {
	Name    string `json:"name"`
	Why     string `json:"why"`
	Consent string `json:"consent"` // opt-in or opt-out
	Meaning string `json:"meaning"`
}

// NoticeProtection states the privacy budget in numbers and in words.
type NoticeProtection struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Period  string  `json:"period,omitempty"`
	Plain   string  `json:"plain"`
}

// NoticeRight is one right of the customer and how to use it.
type NoticeRight struct {
	Right string `json:"right"`
	How   string `json:"how"`
}
