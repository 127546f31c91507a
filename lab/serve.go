package lab

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// addrList is a repeatable flag of "host:port" addresses.
type addrList []netip.AddrPort

func (a *addrList) String() string { return fmt.Sprint(*a) }

// stringList is a repeatable flag of strings.
type stringList []string

func (a *stringList) String() string { return fmt.Sprint(*a) }

func (a *stringList) Set(s string) error {
	*a = append(*a, s)
	return nil
}

func (a *addrList) Set(s string) error {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return err
	}
	*a = append(*a, ap)
	return nil
}

// Serve runs the lab's own services, as `braid lab serve` (the lab starts
// it inside a namespace, see Process.Serve). args are its flags:
//
//	-whoami ADDR       a TCP whoami service on ADDR ("ip:port", "[ip6]:port");
//	                   repeatable. It writes the client's address as it saw
//	                   it ("10.101.0.2:40000\n") and closes the connection.
//	-whoami-udp ADDR   the same over UDP: one answer per datagram.
//	-download ADDR     a TCP download service on ADDR: it sends bytes to
//	                   every client until the client closes; repeatable.
//	-delay-tap NS/TAP  a delay line (see Delay): create the TAP device TAP in
//	                   namespace NS and write back every packet sent out of
//	                   it -delay later; repeatable, one per direction.
//	-delay D           how long the delay lines hold packets.
//	-lns FILE          the lab's test LNS (see LNSUp), configured by FILE.
//	-ready-fd N        once every service listens (and every TAP device
//	                   exists), write "ready\n" to file descriptor N and
//	                   close it.
//
// Serve returns when ctx is done (nil), or when a service cannot listen.
func Serve(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("lab serve", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	var tcp, udp addrList
	fset.Var(&tcp, "whoami", "TCP whoami service address (repeatable)")
	fset.Var(&udp, "whoami-udp", "UDP whoami service address (repeatable)")
	var downloads addrList
	fset.Var(&downloads, "download", "TCP download service address (repeatable)")
	var taps stringList
	fset.Var(&taps, "delay-tap", "delay line TAP device, NS/NAME (repeatable)")
	delay := fset.Duration("delay", 0, "delay of the delay lines")
	lnsConf := fset.String("lns", "", "test LNS configuration file")
	readyFD := fset.Int("ready-fd", -1, "file descriptor to report readiness on")
	if err := fset.Parse(args); err != nil {
		return fmt.Errorf("lab serve: %w", err)
	}
	if fset.NArg() > 0 {
		return fmt.Errorf("lab serve: unexpected arguments %q", fset.Args())
	}
	if len(tcp)+len(udp)+len(downloads)+len(taps) == 0 && *lnsConf == "" {
		return errors.New("lab serve: nothing to serve (use -whoami, -whoami-udp, -download, -delay-tap or -lns)")
	}
	if len(taps) > 0 && *delay <= 0 {
		return errors.New("lab serve: -delay-tap needs a positive -delay")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	var lc net.ListenConfig
	var wg sync.WaitGroup
	for _, ap := range tcp {
		ln, err := lc.Listen(ctx, "tcp", ap.String())
		if err != nil {
			return fmt.Errorf("lab serve: whoami: %w", err)
		}
		closers = append(closers, ln)
		wg.Go(func() { serveWhoamiTCP(ln) })
	}
	for _, ap := range downloads {
		ln, err := lc.Listen(ctx, "tcp", ap.String())
		if err != nil {
			return fmt.Errorf("lab serve: download: %w", err)
		}
		closers = append(closers, ln)
		wg.Go(func() { serveDownload(ctx, ln) })
	}
	for _, ap := range udp {
		pc, err := lc.ListenPacket(ctx, "udp", ap.String())
		if err != nil {
			return fmt.Errorf("lab serve: whoami-udp: %w", err)
		}
		closers = append(closers, pc)
		wg.Go(func() { serveWhoamiUDP(pc) })
	}
	lineErr := make(chan error, len(taps)+1)
	for _, tap := range taps {
		line, err := openDelayTAP(tap, *delay)
		if err != nil {
			return fmt.Errorf("lab serve: %w", err)
		}
		closers = append(closers, line)
		wg.Go(func() {
			if err := line.Run(ctx); err != nil && ctx.Err() == nil {
				// A line that stops takes its link down with it: stop,
				// for status to show the process dead.
				lineErr <- err
				cancel()
			}
		})
	}
	if *lnsConf != "" {
		lnsReady := make(chan struct{})
		lnsDone := make(chan error, 1)
		wg.Go(func() {
			err := serveLNS(ctx, *lnsConf, func() { close(lnsReady) })
			lnsDone <- err
			if err != nil {
				lineErr <- err
				cancel()
			}
		})
		select {
		case <-lnsReady:
		case err := <-lnsDone:
			cancel()
			wg.Wait()
			return fmt.Errorf("lab serve: %w", err)
		}
	}
	if *readyFD >= 0 {
		f := os.NewFile(uintptr(*readyFD), "ready")
		if f == nil {
			return fmt.Errorf("lab serve: bad -ready-fd %d", *readyFD)
		}
		_, err := f.WriteString("ready\n")
		f.Close()
		if err != nil {
			return fmt.Errorf("lab serve: reporting readiness: %w", err)
		}
	}
	<-ctx.Done()
	for _, c := range closers {
		c.Close()
	}
	closers = nil
	wg.Wait()
	select {
	case err := <-lineErr:
		return fmt.Errorf("lab serve: %w", err)
	default:
		return nil
	}
}

// serveWhoamiTCP answers every connection with its remote address until
// ln is closed.
func serveWhoamiTCP(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // say, EMFILE: do not spin
			continue
		}
		wg.Go(func() {
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%s\n", unmap(c.RemoteAddr()))
		})
	}
}

// downloadChunk is how much the download service writes at a time.
const downloadChunk = 64 << 10

// downloadStall is how long the download service waits for a client to
// take more bytes before it drops the connection.
const downloadStall = time.Minute

// serveDownload sends bytes to every connection until its client closes
// it, or until ln is closed and ctx is done.
func serveDownload(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// The same bytes for every client: what they carry does not matter.
	chunk := bytes.Repeat([]byte("braid lab download\n"), downloadChunk/19+1)[:downloadChunk]
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		wg.Go(func() {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			for {
				// A client gone silent (a blackholed path) is given up
				// after a minute without progress.
				c.SetWriteDeadline(time.Now().Add(downloadStall))
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		})
	}
}

// serveWhoamiUDP answers every datagram with its source address until pc
// is closed.
func serveWhoamiUDP(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		pc.WriteTo([]byte(unmap(from)+"\n"), from)
	}
}

// unmap formats a socket address without an IPv4-mapped IPv6 prefix.
func unmap(a net.Addr) string {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return a.String()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// whoamiTimeout bounds a Whoami exchange when ctx has no deadline.
const whoamiTimeout = 5 * time.Second

// Whoami asks the whoami service at server ("host:port") over network
// ("tcp", "udp", or those with a 4 or 6 suffix) and returns the address
// the server saw the request come from. bind, if not empty, is the local
// address to send from ("ip" or "ip:port"). It uses the namespace of the
// calling thread; see (*Lab).Whoami to ask from a lab's namespace. Without
// a deadline in ctx it gives up after 5 seconds.
func Whoami(ctx context.Context, network, server, bind string) (netip.AddrPort, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, whoamiTimeout)
		defer cancel()
	}
	udp := strings.HasPrefix(network, "udp")
	if !udp && !strings.HasPrefix(network, "tcp") {
		return netip.AddrPort{}, fmt.Errorf("whoami %s: unknown network %q", server, network)
	}
	d, err := dialer(udp, bind)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("whoami %s: %w", server, err)
	}
	c, err := d.DialContext(ctx, network, server)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("whoami %s: %w", server, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	var answer []byte
	if udp {
		answer, err = askUDP(ctx, c)
	} else {
		answer, err = io.ReadAll(io.LimitReader(c, 256))
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return netip.AddrPort{}, fmt.Errorf("whoami %s: %w", server, err)
	}
	seen, err := netip.ParseAddrPort(string(bytes.TrimSpace(answer)))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("whoami %s: unexpected answer %q", server, answer)
	}
	return seen, nil
}

// dialer returns a dialer from bind ("ip" or "ip:port"; any address when
// empty), for UDP or TCP.
func dialer(udp bool, bind string) (*net.Dialer, error) {
	d := &net.Dialer{}
	if bind == "" {
		return d, nil
	}
	local, err := netip.ParseAddrPort(bind)
	if err != nil {
		addr, aerr := netip.ParseAddr(bind)
		if aerr != nil {
			return nil, fmt.Errorf("bind address %q: %w", bind, aerr)
		}
		local = netip.AddrPortFrom(addr, 0)
	}
	if udp {
		d.LocalAddr = net.UDPAddrFromAddrPort(local)
	} else {
		d.LocalAddr = net.TCPAddrFromAddrPort(local)
	}
	return d, nil
}

// Download reads size bytes from the download service at server
// ("host:port", see DownloadPort) over network ("tcp", "tcp4" or
// "tcp6"), optionally from the local address bind, then closes the
// connection. progress, if not nil, is called after every read with the
// bytes received so far. It returns how many bytes came, and an error
// when fewer than size did (ctx's error once ctx is done). It uses the
// namespace of the calling thread; see (*Lab).Download.
func Download(ctx context.Context, network, server, bind string, size int64, progress func(received int64)) (int64, error) {
	if !strings.HasPrefix(network, "tcp") {
		return 0, fmt.Errorf("download %s: unknown network %q", server, network)
	}
	if size <= 0 {
		return 0, fmt.Errorf("download %s: size %d: want a positive size", server, size)
	}
	d, err := dialer(false, bind)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", server, err)
	}
	c, err := d.DialContext(ctx, network, server)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", server, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, downloadChunk)
	var n int64
	for n < size {
		m, err := c.Read(buf[:min(int64(len(buf)), size-n)])
		n += int64(m)
		if m > 0 && progress != nil {
			progress(n)
		}
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return n, fmt.Errorf("download %s: after %d bytes: %w", server, n, err)
		}
	}
	return n, nil
}

// askUDP sends a whoami datagram on c, again every half second until an
// answer comes or ctx is done (a datagram may be lost).
func askUDP(ctx context.Context, c net.Conn) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		if _, err := c.Write([]byte("whoami\n")); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return buf[:n], nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
			return nil, err
		}
	}
}
