package he

// Test-only parameters: small rings, far below 128-bit security. Never use
// them outside tests.
var (
	testInsecureBGV  = Preset{Name: "testInsecureBGV", Scheme: BGV, LogN: 11, LogQ: []int{60, 60, 60}, LogP: []int{60}, PlaintextModulus: plaintextModulus, Depth: 1, FloodBits: 40, MaxDecryptions: 16, insecure: true}
	testInsecureCKKS = Preset{Name: "testInsecureCKKS", Scheme: CKKS, LogN: 11, LogQ: []int{60, 60, 50}, LogP: []int{61}, LogScale: 50, ConjugateInvariant: true, Depth: 2, FloodBits: 40, MaxDecryptions: 16, insecure: true}
)

func init() {
	registerPreset(testInsecureBGV)
	registerPreset(testInsecureCKKS)
}
