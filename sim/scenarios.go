package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Scenario is one protocol run the simulation can perform.
type Scenario struct {
	Name    string
	Summary string
	Run     func(ctx context.Context) error
}

// Scenario names.
const (
	ScRegister          = "register"
	ScRO2Pass           = "ro-2pass"
	ScRO1Pass           = "ro-1pass"
	ScJoinDomain        = "join-domain"
	ScLeaveDeviceDomain = "leave-device-domain"
	ScLeaveUserDomain   = "leave-user-domain"
	ScDEAInitiatedLeave = "dea-initiated-leave"
	ScTokens2Pass       = "tokens-2pass"
	ScTokens1Pass       = "tokens-1pass"
	ScTokenReportAck    = "token-report-ack"
	ScTokenReportError  = "token-report-error"
	ScTokenNoReport     = "token-no-report"
	ScMetering          = "metering"
)

// Scenarios lists the runs in the order RunOnce performs them. Each one sets up what it needs
// (registration, domain membership), so any of them can run alone or repeatedly.
func (s *Sim) Scenarios() []Scenario {
	a, b := s.Agents[0], s.Agents[1]
	ri1, ri2 := s.RIs[0], s.RIs[1]
	return []Scenario{
		{ScRegister, "registration trigger, then 4-pass registration (deviceHello … registrationResponse with OCSP)", func(ctx context.Context) error {
			ri1.Trigger(a.ID(), "registrationRequest", "", nil, false)
			if err := pollExpect(ctx, a, ri1, 1); err != nil {
				return err
			}
			if a.Registered(ri1.PublicURL()) != ri1.ID() {
				return errors.New("the agent holds no RI context after registering")
			}
			return nil
		}},
		{ScRO2Pass, "roAcquisition trigger, 2-pass RO acquisition, then a direct request for two ROs", func(ctx context.Context) error {
			if _, err := a.Register(ctx, ri1.PublicURL()); err != nil {
				return err
			}
			ri1.Trigger(a.ID(), "roAcquisition", "", []string{"RO-song-1"}, false)
			if err := pollExpect(ctx, a, ri1, 1); err != nil {
				return err
			}
			if _, err := a.AcquireRO(ctx, ri1.PublicURL(), []string{"RO-album-1", "RO-album-2"}); err != nil {
				return err
			}
			return checkCEKs(a, ri1, "RO-song-1", "RO-album-1", "RO-album-2")
		}},
		{ScRO1Pass, "1-pass roResponse pushed to the device", func(ctx context.Context) error {
			if _, err := a.ensure(ctx, ri1.PublicURL()); err != nil {
				return err
			}
			if err := ri1.PushRO(ctx, a.ID(), []string{"RO-push-1"}); err != nil {
				return err
			}
			if err := pollExpect(ctx, a, ri1, 1); err != nil {
				return err
			}
			return checkCEKs(a, ri1, "RO-push-1")
		}},
		{ScMetering, "extended meteringReport trigger, then meteringReportSubmit (encrypted to the RI) and meteringReportResponse", func(ctx context.Context) error {
			if _, err := a.ensure(ctx, ri1.PublicURL()); err != nil {
				return err
			}
			before := len(ri1.MeteringReports(a.ID()))
			ri1.Trigger(a.ID(), "meteringReport", "", nil, true)
			if err := pollExpect(ctx, a, ri1, 1); err != nil {
				return err
			}
			reps := ri1.MeteringReports(a.ID())
			if len(reps) != before+1 || !strings.HasPrefix(reps[len(reps)-1], "<meteringInfo>") {
				return fmt.Errorf("the RI holds %d reports (had %d)", len(reps), before)
			}
			return nil
		}},
		{ScJoinDomain, "joinDomain trigger, then joinDomainRequest/Response for the RI's own domain", func(ctx context.Context) error {
			if _, err := a.ensure(ctx, ri1.PublicURL()); err != nil {
				return err
			}
			ri1.Trigger(a.ID(), "joinDomain", DeviceDomain1, nil, false)
			if err := pollExpect(ctx, a, ri1, 1); err != nil {
				return err
			}
			if !a.InDomain(DeviceDomain1, ri1.ID()) || !ri1.IsMember(DeviceDomain1, a.ID()) {
				return errors.New("device and RI disagree about the domain membership after joining")
			}
			return nil
		}},
		{ScLeaveDeviceDomain, "leaveDomain trigger, then leaveDomainRequest/Response for the RI's own domain", func(ctx context.Context) error {
			if !a.InDomain(DeviceDomain1, ri1.ID()) {
				if err := a.JoinDomain(ctx, ri1.PublicURL(), DeviceDomain1); err != nil {
					return err
				}
			}
			ri1.Trigger(a.ID(), "leaveDomain", DeviceDomain1, nil, false)
			if err := pollExpect(ctx, a, ri1, 1); err != nil {
				return err
			}
			if a.InDomain(DeviceDomain1, "") || ri1.IsMember(DeviceDomain1, a.ID()) {
				return errors.New("the device is still in the domain after leaving")
			}
			return nil
		}},
		{ScLeaveUserDomain, "device leaves the user domain via RI 1 (RI → DEA proxy leave), the DEA triggers RI 2, the device leaves there too", func(ctx context.Context) error {
			if err := joinUser(ctx, a, ri1, ri2); err != nil {
				return err
			}
			if err := a.LeaveDomain(ctx, ri1.PublicURL(), UserDomain); err != nil {
				return err
			}
			s.DEA.Wait() // the DEA triggers RI 2 after answering RI 1
			if err := pollExpect(ctx, a, ri2, 1); err != nil {
				return err
			}
			return checkLeft(s, a)
		}},
		{ScDEAInitiatedLeave, "the DEA removes a device: drmTriggers to both RIs, ROAP leave triggers, the device leaves via each RI", func(ctx context.Context) error {
			if err := joinUser(ctx, b, ri1, ri2); err != nil {
				return err
			}
			if err := s.DEA.Leave(ctx, UserDomain, []string{b.ID()}); err != nil {
				return err
			}
			for _, ri := range []*RI{ri1, ri2} {
				if err := pollExpect(ctx, b, ri, 1); err != nil {
					return err
				}
				s.DEA.Wait()
			}
			return checkLeft(s, b)
		}},
		{ScTokens2Pass, "tokenRequest, 2-pass TokenDeliveryResponse (Movable, DomainID)", func(ctx context.Context) error {
			before := a.Tokens()
			td, err := a.RequestTokens(ctx, ri1.PublicURL())
			if err != nil {
				return err
			}
			if td.Quantity <= 0 || a.Tokens() != before+td.Quantity || !td.Movable || td.DomainID != TokenDomain {
				return fmt.Errorf("unexpected delivery %+v", td)
			}
			return nil
		}},
		{ScTokens1Pass, "1-pass TokenDeliveryResponse pushed to the device", func(ctx context.Context) error {
			if _, err := a.ensure(ctx, ri1.PublicURL()); err != nil {
				return err
			}
			before := a.Tokens()
			if err := ri1.PushTokens(ctx, a.ID(), 5); err != nil {
				return err
			}
			if err := pollExpect(ctx, a, ri1, 1); err != nil {
				return err
			}
			if a.Tokens() != before+5 {
				return fmt.Errorf("token balance %d, expected %d", a.Tokens(), before+5)
			}
			return nil
		}},
		{ScTokenReportAck, "tokens delivered, consumption reported to the tokenReportingURL, quantity-0 acknowledgement", func(ctx context.Context) error {
			td, err := a.RequestTokens(ctx, ri1.PublicURL())
			if err != nil {
				return err
			}
			ack, err := a.ReportConsumption(ctx, td, 3)
			if err != nil {
				return err
			}
			if ack.Quantity != 0 || ack.ID == td.ID {
				return fmt.Errorf("unexpected acknowledgement %+v", ack)
			}
			return nil
		}},
		{ScTokenReportError, "a consumption report for a delivery the RI never made: TokenConsumptionReportError", func(ctx context.Context) error {
			c, err := a.ensure(ctx, ri1.PublicURL())
			if err != nil {
				return err
			}
			bogus := &TokenDelivery{ID: "tdid-never-issued", RIID: c.id, ReportingURL: ri1.PublicURL() + "/token-report"}
			_, err = a.ReportConsumption(ctx, bogus, 1)
			if !IsStatus(err, StatusTokenReportError) {
				return fmt.Errorf("expected %s, got %v", StatusTokenReportError, err)
			}
			return nil
		}},
		{ScTokenNoReport, "a delivery with a 1-second window passes unreported: NoTokenConsumptionReport, then a late report and a new delivery", func(ctx context.Context) error {
			ri1.SetTokenTerms(a.ID(), TokenTerms{Quantity: 2, Earliest: 0, Latest: time.Second, LTCT: time.Second})
			td, err := a.RequestTokens(ctx, ri1.PublicURL())
			ri1.SetTokenTerms(a.ID(), TokenTerms{})
			if err != nil {
				return err
			}
			// Wait until the RI's clock is past the consumption deadline (seconds resolution).
			for ri1.now().Before(td.LTCT.Add(time.Second)) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
			if _, err := a.RequestTokens(ctx, ri1.PublicURL()); !IsStatus(err, StatusNoTokenReport) {
				return fmt.Errorf("expected %s, got %v", StatusNoTokenReport, err)
			}
			if _, err := a.ReportConsumption(ctx, td, 2); err != nil {
				return err
			}
			_, err = a.RequestTokens(ctx, ri1.PublicURL())
			return err
		}},
	}
}

// pollExpect polls the RI and checks that at least want objects were waiting.
func pollExpect(ctx context.Context, a *Agent, ri *RI, want int) error {
	n, err := a.Poll(ctx, ri.PublicURL())
	if err != nil {
		return err
	}
	if n < want {
		return fmt.Errorf("%s had %d object(s) queued for %s, expected %d", ri.Name(), n, a.Name(), want)
	}
	return nil
}

func checkCEKs(a *Agent, ri *RI, ids ...string) error {
	for _, id := range ids {
		ro := a.RO(id)
		if ro == nil {
			return fmt.Errorf("RO %s not installed", id)
		}
		if !bytes.Equal(ro.CEK, ri.CEK(id)) {
			return fmt.Errorf("RO %s: the device unwrapped a content key other than the RI's", id)
		}
	}
	return nil
}

// joinUser makes the agent a member of UserDomain through every given RI.
func joinUser(ctx context.Context, a *Agent, ris ...*RI) error {
	for _, ri := range ris {
		if a.InDomain(UserDomain, ri.ID()) && ri.IsMember(UserDomain, a.ID()) {
			continue
		}
		if err := a.JoinDomain(ctx, ri.PublicURL(), UserDomain); err != nil {
			return fmt.Errorf("joining %s via %s: %w", UserDomain, ri.Name(), err)
		}
	}
	return nil
}

// checkLeft verifies that no party still holds the agent in UserDomain.
func checkLeft(s *Sim, a *Agent) error {
	if a.InDomain(UserDomain, "") {
		return errors.New("the device still holds a user-domain context")
	}
	for _, ri := range s.RIs {
		if ri.IsMember(UserDomain, a.ID()) {
			return fmt.Errorf("%s still holds the device in the user domain", ri.Name())
		}
	}
	if m := s.DEA.Members(UserDomain)[a.ID()]; len(m) > 0 {
		return fmt.Errorf("the DEA still associates the device with the domain via %v", m)
	}
	if p := s.DEA.Pending(UserDomain, a.ID()); len(p) > 0 {
		return fmt.Errorf("the DEA still waits for the device to leave via %v", p)
	}
	return nil
}
