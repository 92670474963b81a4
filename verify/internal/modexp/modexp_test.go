package modexp

import (
	"bytes"
	"crypto/rand"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// oddModulus is a random odd modulus of exactly bits bits.
func oddModulus(t testing.TB, r *mrand.Rand, bits int) *big.Int {
	t.Helper()
	b := make([]byte, (bits+7)/8)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	n := new(big.Int).SetBytes(b)
	n.Rsh(n, uint(len(b)*8-bits))
	return n.SetBit(n, bits-1, 1).SetBit(n, 0, 1)
}

// moduli are the shapes that stress carries: random, all ones (every word at its maximum), a
// power of two plus one (long runs of zero words), and one bit over a word boundary.
func moduli(t testing.TB, r *mrand.Rand, bits int) []*big.Int {
	one := big.NewInt(1)
	allOnes := new(big.Int).Sub(new(big.Int).Lsh(one, uint(bits)), one)
	pow2p1 := new(big.Int).Add(new(big.Int).Lsh(one, uint(bits-1)), one)
	return []*big.Int{oddModulus(t, r, bits), oddModulus(t, r, bits), allOnes, pow2p1}
}

// inputs are values below n that stress the arithmetic: 0, 1, 2, n-1, n-2, a value with every
// bit below n's top set, and random ones.
func inputs(r *mrand.Rand, n *big.Int) []*big.Int {
	one := big.NewInt(1)
	below := new(big.Int).Sub(new(big.Int).Lsh(one, uint(n.BitLen()-1)), one)
	out := []*big.Int{big.NewInt(0), one, big.NewInt(2), new(big.Int).Sub(n, one), new(big.Int).Sub(n, big.NewInt(2)), below}
	for range 4 {
		b := make([]byte, (n.BitLen()+7)/8)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		out = append(out, new(big.Int).Mod(new(big.Int).SetBytes(b), n))
	}
	return out
}

// agree checks Exp against math/big for every modulus shape, input and exponent at these sizes.
func agree(t *testing.T, sizes []int) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(1, 2))
	for _, bits := range sizes {
		for _, n := range moduli(t, r, bits) {
			M, err := NewModulus(n)
			if err != nil {
				t.Fatalf("%d bits: %v", bits, err)
			}
			if M.BitLen() != bits || M.Size() != (bits+7)/8 {
				t.Fatalf("%d bits: BitLen %d, Size %d", bits, M.BitLen(), M.Size())
			}
			for _, x := range inputs(r, n) {
				for _, e := range []uint{1, 2, 3, 17, 65537, 1<<31 - 1, 0xd0000001} {
					want := new(big.Int).Exp(x, new(big.Int).SetUint64(uint64(e)), n).FillBytes(make([]byte, M.Size()))
					got, err := M.Exp(x.FillBytes(make([]byte, M.Size())), e)
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("%d bits, n=%x, x=%x, e=%d: got %x, %v; want %x", bits, n, x, e, got, err, want)
					}
				}
			}
		}
	}
}

// The sizes cover the straight-line code (1024, 2048 bits), the loops for any length with and
// without a remainder of words after the groups of four (3072 bits is 48 words; 1088 is 17), and
// one word.
var sizes = []int{2, 63, 64, 65, 127, 1024, 1025, 1088, 1536, 2047, 2048, 2049, 3072, 4096, 4160, 8192}

func TestExpAgreesWithMathBig(t *testing.T) { agree(t, sizes) }

// TestGoLoopsAgree runs the same checks on the Go loops, which other architectures use (and the
// assembly is otherwise never compared with them directly).
func TestGoLoopsAgree(t *testing.T) {
	if !useASM {
		t.Skip("the Go loops are what the other test ran")
	}
	useASM = false
	defer func() { useASM = true }()
	agree(t, sizes)
}

// TestWordLoopsAgree compares each assembly loop with its Go counterpart word for word, at every
// length from 1 to 70 and with all-ones words, where every carry is taken.
func TestWordLoopsAgree(t *testing.T) {
	if !useASM {
		t.Skip("no assembly here")
	}
	r := mrand.New(mrand.NewPCG(3, 4))
	fill := func(v []uint64, ones bool) {
		for i := range v {
			v[i] = r.Uint64()
			if ones {
				v[i] = ^uint64(0)
			}
		}
	}
	for n := 1; n <= 70; n++ {
		for _, ones := range []bool{false, true} {
			x, z := make([]uint64, n), make([]uint64, n)
			fill(x, ones)
			fill(z, ones)
			y := r.Uint64()
			if ones {
				y = ^uint64(0)
			}
			z1, z2 := append([]uint64(nil), z...), append([]uint64(nil), z...)
			c1 := addMulRow(z1, x, y)
			c2 := addMulRowGo(z2, x, y)
			if c1 != c2 || !equal(z1, z2) {
				t.Fatalf("addMulRow, %d words, ones=%v: carry %x/%x", n, ones, c1, c2)
			}

			t1, t2 := make([]uint64, 2*n), make([]uint64, 2*n)
			square(t1, x)
			squareGo(t2, x)
			xb := new(big.Int).SetBits(toBig(x))
			if !equal(t1, t2) || new(big.Int).SetBits(toBig(t1)).Cmp(new(big.Int).Mul(xb, xb)) != 0 {
				t.Fatalf("square, %d words, ones=%v", n, ones)
			}

			m := make([]uint64, n)
			fill(m, ones)
			m[0] |= 1
			inv := uint64(1)
			for range 6 {
				inv *= 2 - m[0]*inv
			}
			fill(t1, ones)
			copy(t2, t1)
			c1 = montReduce(t1, m, -inv)
			c2 = montReduceGo(t2, m, -inv)
			if c1 != c2 || !equal(t1, t2) {
				t.Fatalf("montReduce, %d words, ones=%v: carry %d/%d", n, ones, c1, c2)
			}
			for i := range n {
				if t1[i] != 0 {
					t.Fatalf("montReduce, %d words: low word %d is %x, not zero", n, i, t1[i])
				}
			}
		}
	}
}

// toBig converts little-endian words for math/big (64-bit words on the platforms tested).
func toBig(v []uint64) []big.Word {
	w := make([]big.Word, len(v))
	for i, x := range v {
		w[i] = big.Word(x)
	}
	return w
}

func equal(a, b []uint64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestRejects(t *testing.T) {
	for _, n := range []*big.Int{nil, big.NewInt(0), big.NewInt(-7), big.NewInt(1), big.NewInt(1 << 20), new(big.Int).Lsh(big.NewInt(1), MaxBits+1)} {
		if _, err := NewModulus(n); err == nil {
			t.Errorf("modulus %v accepted", n)
		}
	}
	n, _ := new(big.Int).SetString("c5b0a6d4f3e1", 16)
	M, err := NewModulus(n)
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range map[string][]byte{
		"n itself":  n.Bytes(),
		"n+1":       new(big.Int).Add(n, big.NewInt(1)).Bytes(),
		"too short": {1},
		"too long":  append([]byte{0}, n.Bytes()...),
	} {
		if _, err := M.Exp(x, 3); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := M.Exp(make([]byte, M.Size()), 0); err == nil {
		t.Error("exponent 0 accepted")
	}
}

// TestGeneratedCodeIsCurrent regenerates the straight-line assembly and compares.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator")
	}
	out := filepath.Join(t.TempDir(), "sizes.s")
	if b, err := exec.Command("go", "run", "./gen", "-out", out).CombinedOutput(); err != nil {
		t.Fatalf("go run ./gen: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("sizes_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("sizes_amd64.s differs from what ./gen writes: run go generate ./verify/internal/modexp")
	}
}

// FuzzExp holds Exp to math/big on arbitrary moduli, inputs and exponents.
func FuzzExp(f *testing.F) {
	f.Add([]byte{0xc5, 0xb0, 0xa6, 0xd4, 0xf3, 0xe1}, []byte{1, 2, 3}, uint32(65537))
	n2048 := make([]byte, 256)
	for i := range n2048 {
		n2048[i] = 0xff
	}
	f.Add(n2048, []byte{0xfe}, uint32(3))
	f.Fuzz(func(t *testing.T, nb, xb []byte, e uint32) {
		n := new(big.Int).SetBytes(nb)
		M, err := NewModulus(n)
		if err != nil {
			return
		}
		if e == 0 {
			e = 1
		}
		x := new(big.Int).Mod(new(big.Int).SetBytes(xb), n)
		got, err := M.Exp(x.FillBytes(make([]byte, M.Size())), uint(e))
		want := new(big.Int).Exp(x, big.NewInt(int64(e)), n).FillBytes(make([]byte, M.Size()))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("n=%x x=%x e=%d: got %x, %v; want %x", n, x, e, got, err, want)
		}
	})
}

func BenchmarkExp(b *testing.B) {
	for _, bits := range []int{1024, 2048, 3072} {
		n := oddModulus(b, mrand.New(mrand.NewPCG(5, 6)), bits)
		M, _ := NewModulus(n)
		x, _ := rand.Int(rand.Reader, n)
		xb := x.FillBytes(make([]byte, M.Size()))
		b.Run(big.NewInt(int64(bits)).String()+"/modexp", func(b *testing.B) {
			for b.Loop() {
				M.Exp(xb, 65537)
			}
		})
		b.Run(big.NewInt(int64(bits)).String()+"/math-big", func(b *testing.B) {
			e := big.NewInt(65537)
			z := new(big.Int)
			for b.Loop() {
				z.Exp(x, e, n)
			}
		})
	}
}
