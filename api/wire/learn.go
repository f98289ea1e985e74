package wire

import (
	"encoding/json"
	"time"
)

// Bodies of the model and fairness-audit routes (/v1/models…,
// /v1/fairness-audits…; docs/learning.md). A model is the model file that
// `privalytics learn train` writes, field for field.

// ModelCharge is one release of a training or audit and its zCDP cost.
type ModelCharge struct {
	What string  `json:"what"`
	Rho  float64 `json:"rho"`
}

// Model is a released model: coefficients, the privacy cost of training and
// the data schema it expects (opaque here; see docs/learning.md).
type Model struct {
	FormatVersion   int             `json:"format_version"`
	Name            string          `json:"name,omitempty"`
	Version         int             `json:"version"`
	Kind            string          `json:"kind"`
	Schema          json.RawMessage `json:"schema"`
	Features        []string        `json:"features"`
	Coefficients    []float64       `json:"coefficients"`
	Epsilon         float64         `json:"epsilon"`
	Delta           float64         `json:"delta"`
	Rho             float64         `json:"rho"`
	Charges         []ModelCharge   `json:"charges"`
	Locations       int             `json:"locations"`
	Threshold       int             `json:"threshold"`
	Rounds          int             `json:"rounds,omitempty"`
	Lambda          float64         `json:"lambda"`
	Trained         time.Time       `json:"trained"`
	TrainingSeconds float64         `json:"training_seconds"`
}

// ModelSummary is one model name in a listing.
type ModelSummary struct {
	Name     string    `json:"name"`
	Versions int       `json:"versions"`
	Kind     string    `json:"kind"`
	Epsilon  float64   `json:"epsilon"`
	Trained  time.Time `json:"trained"`
}

// ModelList is GET /v1/models.
type ModelList struct {
	Models []ModelSummary `json:"models"`
}

// FairnessRecord is one customer's prediction: group, score in [0, 1], outcome.
type FairnessRecord struct {
	Group string  `json:"group"`
	Score float64 `json:"score"`
	Label bool    `json:"label"`
}

// FairnessConfig is an audit's public configuration.
type FairnessConfig struct {
	Attribute  string    `json:"attribute"`
	Groups     []string  `json:"groups"`
	Threshold  float64   `json:"threshold"`
	Edges      []float64 `json:"edges,omitempty"`
	Epsilon    float64   `json:"epsilon"`
	Delta      float64   `json:"delta"`
	Confidence float64   `json:"confidence"`
	Reference  string    `json:"reference,omitempty"`
}

// FairnessAuditRequest asks for a DP bias audit of predictions; Model (and
// ModelVersion, 0 for the latest) names the stored model they came from,
// empty for a model trained elsewhere.
type FairnessAuditRequest struct {
	Model        string           `json:"model,omitempty"`
	ModelVersion int              `json:"model_version,omitempty"`
	Config       FairnessConfig   `json:"config"`
	Records      []FairnessRecord `json:"records"`
}

// FairnessRate is a released proportion with its interval.
type FairnessRate struct {
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// FairnessBin is a calibration bin.
type FairnessBin struct {
	Lower    float64      `json:"lower"`
	Upper    float64      `json:"upper"`
	Count    float64      `json:"count"`
	Observed FairnessRate `json:"observed"`
}

// FairnessGroup is one group's released metrics.
type FairnessGroup struct {
	Name          string        `json:"name"`
	Count         float64       `json:"count"`
	SelectionRate FairnessRate  `json:"selection_rate"`
	TPR           FairnessRate  `json:"true_positive_rate"`
	FPR           FairnessRate  `json:"false_positive_rate"`
	Calibration   []FairnessBin `json:"calibration"`
}

// FairnessDisparity compares a group with the reference on one metric.
type FairnessDisparity struct {
	Metric     string       `json:"metric"`
	Group      string       `json:"group"`
	Reference  string       `json:"reference"`
	Difference FairnessRate `json:"difference"`
	Ratio      FairnessRate `json:"ratio"`
	Flag       string       `json:"flag,omitempty"`
}

// FairnessReport is an audit's figures.
type FairnessReport struct {
	Config      FairnessConfig      `json:"config"`
	Reference   string              `json:"reference"`
	Groups      []FairnessGroup     `json:"groups"`
	Disparities []FairnessDisparity `json:"disparities"`
	Rho         float64             `json:"rho"`
	Sigma       float64             `json:"sigma"`
	Charges     []ModelCharge       `json:"charges"`
}

// FairnessAudit is a stored audit: its figures and the plain-language report
// rendered from exactly those figures.
type FairnessAudit struct {
	ID           string         `json:"id"`
	Model        string         `json:"model,omitempty"`
	ModelVersion int            `json:"model_version,omitempty"`
	Created      time.Time      `json:"created"`
	Report       FairnessReport `json:"report"`
	Markdown     string         `json:"markdown"`
}
