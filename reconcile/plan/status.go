package plan

// State is where a desired object stands.
type State string

// States of an object.
const (
	Pending State = "pending"
	Done    State = "done"
	Failed  State = "error"
)

// Status is the status of one object braid converges.
type Status struct {
	Address string `json:"address"`
	State   State  `json:"state"`
	// Error is the last error, set when State is Failed.
	Error string `json:"error,omitempty"`
}
