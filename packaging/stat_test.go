package packaging

import "golang.org/x/sys/unix"

type syscallStat struct{ ino uint64 }

func (s *syscallStat) of(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	s.ino = st.Ino
	return nil
}
