package record

import (
	"errors"
	"slices"
	"sync"
)

// Batch is a driver's use of the record for one batch of changes (its
// ApplyBatch): two writes of the record for the whole batch instead of one
// per change. Before the batch's first kernel write, WriteAhead writes the
// entries of all its changes at once; the removals that follow its deletes
// are held until End, which writes them with the removal of the entries
// written ahead for the changes the batch did not get to.
//
// The driver's Apply, called for each change, then finds its entry
// recorded and writes nothing more; the record's WroteAhead tells it an
// entry recorded before the batch (braid's own object) from one only
// written ahead (for an object it has yet to create). Add, WriteAhead and
// End are for the goroutine that runs the batch; WroteAhead may be asked
// from any (a driver's parallel lanes).
type Batch struct {
	rec     *Record
	release func() error

	// entries are those Add queued, for the changes at the same indexes
	// of changeOf.
	entries  []Entry
	changeOf []int

	mu sync.Mutex
	// ahead maps the entries WriteAhead added (that were not recorded
	// before it) to the index of the first change they were written for.
	ahead map[entryKey]int
}

type entryKey struct{ kind, key string }

// Batch starts a batch of changes: deletes are held (HoldDeletes) until
// End.
func (r *Record) Batch() *Batch {
	b := &Batch{rec: r, release: r.HoldDeletes()}
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	return b
}

// Add queues, for WriteAhead, the entry that change i of the batch writes
// before its kernel write.
func (b *Batch) Add(i int, e Entry) {
	b.entries = append(b.entries, e)
	b.changeOf = append(b.changeOf, i)
}

// WriteAhead writes the entries queued by Add in one write of the record
// (PutAll), and remembers those it added. If the write fails, nothing is
// remembered: End forgets nothing.
func (b *Batch) WriteAhead() error {
	ahead := map[entryKey]int{}
	for j, e := range b.entries {
		k := entryKey{e.Kind, e.Key}
		if _, seen := ahead[k]; !seen && !b.rec.Has(e.Kind, e.Key) {
			ahead[k] = b.changeOf[j]
		}
	}
	if err := b.rec.PutAll(b.entries); err != nil {
		return err
	}
	b.mu.Lock()
	b.ahead = ahead
	b.mu.Unlock()
	return nil
}

// wroteAhead reports whether WriteAhead added the entry kind/key.
func (b *Batch) wroteAhead(k entryKey) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.ahead[k]
	return ok
}

// WroteAhead reports whether a batch still running wrote the entry
// kind/key ahead (it was not recorded before the batch): the entry is for
// an object that its change has yet to create.
func (r *Record) WroteAhead(kind, key string) bool {
	r.mu.Lock()
	batches := r.batches
	r.mu.Unlock()
	return slices.ContainsFunc(batches, func(b *Batch) bool { return b.wroteAhead(entryKey{kind, key}) })
}

// End ends the batch's use of the record: it forgets the entries
// WriteAhead added for the changes from tried on, which the batch did not
// attempt (the failed change itself is its Apply's to clean up, as without
// a batch), and releases the held deletes, writing the removals. It is
// called once.
func (b *Batch) End(tried int) error {
	b.rec.mu.Lock()
	b.rec.batches = slices.DeleteFunc(slices.Clone(b.rec.batches), func(o *Batch) bool { return o == b })
	b.rec.mu.Unlock()
	b.mu.Lock()
	ahead := b.ahead
	b.ahead = nil
	b.mu.Unlock()
	var errs []error
	for k, i := range ahead {
		if i >= tried {
			errs = append(errs, b.rec.Delete(k.kind, k.key))
		}
	}
	return errors.Join(append(errs, b.release())...)
}
