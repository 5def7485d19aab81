package phase1

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/tenantmigrate/runner/model"
	"github.com/tenantmigrate/runner/runner/internal/join"
	"github.com/tenantmigrate/runner/runner/internal/sorted"
)

// Phase 1 writes each group over what an earlier run wrote for it. That is
// right while the identity rules stay the same; but a tenant account an
// earlier run merged on an identifier the rules no longer link (an
// unverified one, merged by a build before the rule; or a case variant,
// merged with identity.normalize on, which is now off) holds accounts
// that are no longer one person. Merging their new groups over it would
// leave them merged (an account no longer grouped is not written at all),
// and the report would call them apart. So before it writes, phase 1
// checks every link against the new groups and refuses, naming the tenant
// accounts the rules now split, until an operator undoes phase 1 (its down
// deletes what the links name) or restores the configuration.
//
// A link (legacy L -> tenant T) agrees when L's group is T's group (an
// account in no group is a group of its own). The check writes one
// scratch document per link, keyed by T, then L's group, then L, and reads
// them back: a tenant whose run holds two group keys is split. Memory holds
// one tenant's links.

// ErrRulesSplit: links an earlier run wrote put accounts in one tenant
// account that the identity rules no longer link.
var ErrRulesSplit = errors.New("tenant accounts an earlier run merged are no longer one person by the identity rules")

// SplitTenant is a tenant account the identity rules now split: its legacy
// accounts, by _id.
type SplitTenant struct {
	Tenant   model.ID   `json:"tenant_id"`
	Accounts []model.ID `json:"legacy_ids"`
}

func (s SplitTenant) String() string {
	return fmt.Sprintf("tenant %s: %s", s.Tenant, joinIDs(s.Accounts))
}

// SplitError lists them; it wraps ErrRulesSplit.
type SplitError struct{ Report *Report }

func (e *SplitError) Error() string {
	first := make([]string, len(e.Report.FirstSplit))
	for i, s := range e.Report.FirstSplit {
		first[i] = s.String()
	}
	return fmt.Sprintf("%d %s (%d legacy accounts; first: %s): an earlier build, or identity.normalize, merged them on an identifier these rules do not link (an unverified one, or one differing by case or Unicode form); nothing was written: undo phase 1 (runner down until step 2 is undone) and run again, or restore the identity configuration that merged them",
		e.Report.Split, ErrRulesSplit, e.Report.SplitAccounts, strings.Join(first, "; "))
}

func (e *SplitError) Unwrap() error { return ErrRulesSplit }

// splitDoc is one link in the check's scratch table.
type splitDoc struct {
	ID string   `bson:"_id"` // accountKey(T) + accountKey(L's group) + accountKey(L)
	T  model.ID `bson:"t"`
	G  model.ID `bson:"g"`
	L  model.ID `bson:"l"`
}

// pass 2b: the links against the new groups.
func (p *run) checkLinks(ctx context.Context) error {
	pairs := p.store.table("split", "_id")
	defer func() { _ = pairs.drop(context.WithoutCancel(ctx)) }()
	out := newInserter(ctx, pairs, p.cfg.Batch)
	rows, err := sorted.Open(ctx, p.cfg.DB.Collection(p.cfg.Links), p.cfg.scope(), bson.D{{Key: "tenant_id", Value: 1}, {Key: "skipped", Value: 1}}, p.read())
	if err != nil {
		return fmt.Errorf("read links: %w", err)
	}
	links := join.ByID(rows, "links")
	defer links.Close(ctx)
	defer p.lookup.close(ctx) // read again from the start by the next pass
	for {
		d, ok, err := links.Next(ctx)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		var l model.Link
		if err := bson.Unmarshal(d.Raw, &l); err != nil {
			return fmt.Errorf("decode link %s: %w", d.ID, err)
		}
		if l.Skipped != "" || l.TenantID.IsZero() {
			continue
		}
		g, grouped, err := p.lookup.group(ctx, d.ID)
		if err != nil {
			return err
		}
		if !grouped {
			g = d.ID
		}
		if err := out.add(splitDoc{ID: accountKey(l.TenantID) + accountKey(g) + accountKey(d.ID), T: l.TenantID, G: g, L: d.ID}); err != nil {
			return err
		}
	}
	if err := out.flush(); err != nil {
		return err
	}
	// The tenant's own link names its group: an account in no group (it
	// has no link of its own once merged away) is a group of its own.
	tenants, err := stream(ctx, pairs, join.Spec[splitDoc, model.ID]{What: "links by tenant", Key: func(d splitDoc) model.ID { return d.T }, Compare: model.ID.Compare})
	if err != nil {
		return err
	}
	defer tenants.Close(ctx)
	err = tenants.Groups(ctx, func(run []splitDoc) error {
		if run[0].G == run[len(run)-1].G {
			return nil
		}
		if p.cfg.LeaveSplit {
			if p.split == nil {
				p.split = map[model.ID]bool{}
			}
			p.split[run[0].T] = true
		}
		p.rep.Split++
		p.rep.SplitAccounts += len(run)
		if len(p.rep.FirstSplit) < maxListed {
			s := SplitTenant{Tenant: run[0].T}
			for _, d := range run {
				s.Accounts = append(s.Accounts, d.L)
			}
			p.rep.FirstSplit = append(p.rep.FirstSplit, s)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if p.rep.Split > 0 && p.cfg.LeaveSplit {
		p.rep.SplitLeft = true
		return nil
	}
	if p.rep.Split > 0 {
		p.rep.WouldStop = true
		if !p.cfg.DryRun {
			return &SplitError{Report: p.rep}
		}
	}
	return nil
}
