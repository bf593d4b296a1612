package kafka

import (
	"encoding/json"
	"slices"

	kafkago "github.com/segmentio/kafka-go"
)

// balancerProtocol names the assignment protocol of stickyBalancer.
const balancerProtocol = "hookline-sticky-busy"

// stickyBalancer is a kafka-go GroupBalancer that keeps every partition
// with messages in a member's handlers at that member, and spreads the
// others evenly. A partition moved while one of its messages is being
// handled would be handed to its new owner too (its offset cannot be
// committed past an unfinished message); keeping it avoids that duplicate.
// Each member states its busy partitions in its join metadata (busy).
type stickyBalancer struct {
	busy func() []int // partitions this member must keep
}

// ProtocolName implements kafkago.GroupBalancer.
func (b *stickyBalancer) ProtocolName() string { return balancerProtocol }

// UserData implements kafkago.GroupBalancer: the member's busy partitions.
func (b *stickyBalancer) UserData() ([]byte, error) {
	var busy []int
	if b.busy != nil {
		busy = b.busy()
	}
	return json.Marshal(busy)
}

// AssignGroups implements kafkago.GroupBalancer. Busy partitions stay with
// the first member (by ID) that claims them; the rest go, in partition
// order, to the member with the fewest partitions (ties by ID).
func (b *stickyBalancer) AssignGroups(members []kafkago.GroupMember, partitions []kafkago.Partition) kafkago.GroupMemberAssignments {
	out := kafkago.GroupMemberAssignments{}
	byTopic := map[string][]int{}
	for _, p := range partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.ID)
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b kafkago.GroupMember) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	for _, m := range ms {
		out[m.ID] = map[string][]int{}
	}
	for topic, parts := range byTopic {
		slices.Sort(parts)
		var subs []kafkago.GroupMember
		for _, m := range ms {
			if slices.Contains(m.Topics, topic) {
				subs = append(subs, m)
			}
		}
		if len(subs) == 0 {
			continue
		}
		owner := map[int]string{}
		count := map[string]int{}
		for _, m := range subs {
			var busy []int
			_ = json.Unmarshal(m.UserData, &busy) // unreadable data: nothing busy
			for _, p := range busy {
				if _, taken := owner[p]; !taken && slices.Contains(parts, p) {
					owner[p] = m.ID
					count[m.ID]++
				}
			}
		}
		for _, p := range parts {
			if _, ok := owner[p]; ok {
				continue
			}
			best := subs[0].ID
			for _, m := range subs[1:] {
				if count[m.ID] < count[best] {
					best = m.ID
				}
			}
			owner[p] = best
			count[best]++
		}
		for _, p := range parts {
			id := owner[p]
			out[id][topic] = append(out[id][topic], p)
		}
	}
	return out
}
