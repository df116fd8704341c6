package main

import (
	"fmt"
	"os"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/xmppgw/xmppgw/fastpath"
	"github.com/xmppgw/xmppgw/gateway"
)

// loadWorkgroups reads XMPPGW_WORKGROUPS_FILE: a JSON array of workgroups
// ({"name","description","members":["expert@domain"],"max_chats",
// "offer_timeout","open"}); "open" defaults to true (fastpath.Workgroup's
// UnmarshalJSONFrom); names are exact and unknown fields are errors. Members may be usernames,
// which get the domain. An empty path means no workgroups at start (admins add them).
func loadWorkgroups(path, domain string) ([]fastpath.Workgroup, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("XMPPGW_WORKGROUPS_FILE: %w", err)
	}
	var wgs []fastpath.Workgroup
	if err := jsonv2.Unmarshal(b, &wgs, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("XMPPGW_WORKGROUPS_FILE: %w", err)
	}
	for i := range wgs {
		for j, m := range wgs[i].Members {
			j2, err := gateway.ParseAddress(m)
			if err == nil && j2.Localpart() == "" {
				j2, err = gateway.UserJID(m, domain)
			}
			if err != nil || j2.Resourcepart() != "" {
				return nil, fmt.Errorf("XMPPGW_WORKGROUPS_FILE: workgroup %q: member %q is not a user", wgs[i].Name, m)
			}
			wgs[i].Members[j] = j2.String()
		}
	}
	return wgs, nil
}
