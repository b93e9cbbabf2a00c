package specs

import (
	"gopkg.in/yaml.v3"
)

// node is a YAML value with its position in its file. Specs are read from
// several files (extends, imports), so every node carries its own file.
type node struct {
	kind  nodeKind
	pos   Pos
	tag   string // resolved YAML tag of a scalar: !!str, !!int, !!float, !!bool, !!null
	value string // scalar text
	keys  []*node
	vals  []*node // mapping values, or sequence items
	index map[string]int
}

type nodeKind int

const (
	kindNull nodeKind = iota
	kindScalar
	kindMap
	kindSeq
)

func (k nodeKind) String() string {
	switch k {
	case kindScalar:
		return "a scalar"
	case kindMap:
		return "a mapping"
	case kindSeq:
		return "a list"
	}
	return "null"
}

func (n *node) get(key string) *node {
	if n == nil || n.index == nil {
		return nil
	}
	if i, ok := n.index[key]; ok {
		return n.vals[i]
	}
	return nil
}

func (n *node) keyPos(key string) Pos {
	if i, ok := n.index[key]; ok {
		return n.keys[i].pos
	}
	return n.pos
}

// set adds or replaces key in a mapping.
func (n *node) set(key, val *node) {
	if n.index == nil {
		n.index = map[string]int{}
	}
	if i, ok := n.index[key.value]; ok {
		n.keys[i], n.vals[i] = key, val
		return
	}
	n.index[key.value] = len(n.keys)
	n.keys = append(n.keys, key)
	n.vals = append(n.vals, val)
}

// converter turns yaml.v3 nodes into nodes with file positions, rejecting
// aliases (no alias bombs), custom tags, duplicate keys and deep nesting.
type converter struct {
	file    string
	lineOff int
	colOff  int
	e       *errs
	// deep is set once a value nests too deeply; the whole block is then
	// dropped, since what is left of it would only produce confusing errors.
	deep bool
}

func (c *converter) pos(n *yaml.Node) Pos {
	return Pos{File: c.file, Line: c.lineOff + n.Line, Col: c.colOff + n.Column}
}

func (c *converter) convert(y *yaml.Node, depth int) *node {
	p := c.pos(y)
	if depth > maxDepth {
		c.e.add(p, "yaml: value nested more than %d levels deep", maxDepth)
		c.deep = true
		return nil
	}
	switch y.Kind {
	case yaml.AliasNode:
		c.e.add(p, "yaml: aliases (*%s) are not allowed in specs", y.Value)
		return nil
	case yaml.ScalarNode:
		tag := y.ShortTag()
		switch tag {
		case "!!null":
			return &node{kind: kindNull, pos: p, tag: tag}
		case "!!str", "!!int", "!!float", "!!bool":
			return &node{kind: kindScalar, pos: p, tag: tag, value: y.Value}
		default:
			c.e.add(p, "yaml: unsupported tag %s", tag)
			return nil
		}
	case yaml.SequenceNode:
		n := &node{kind: kindSeq, pos: p}
		for _, it := range y.Content {
			if v := c.convert(it, depth+1); v != nil {
				n.vals = append(n.vals, v)
			}
			if c.deep {
				return nil
			}
		}
		return n
	case yaml.MappingNode:
		n := &node{kind: kindMap, pos: p}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				c.e.add(c.pos(k), "yaml: merge keys (<<) are not allowed in specs")
				continue
			}
			if k.Kind != yaml.ScalarNode || (k.ShortTag() != "!!str" && k.ShortTag() != "!!int" && k.ShortTag() != "!!float" && k.ShortTag() != "!!bool") {
				if k.Kind == yaml.AliasNode {
					c.e.add(c.pos(k), "yaml: aliases (*%s) are not allowed in specs", k.Value)
				} else {
					c.e.add(c.pos(k), "yaml: mapping keys must be plain strings")
				}
				continue
			}
			key := &node{kind: kindScalar, pos: c.pos(k), tag: "!!str", value: k.Value}
			if n.get(k.Value) != nil || (n.index != nil && hasKey(n, k.Value)) {
				c.e.add(key.pos, "duplicate key %q (first at %s)", k.Value, n.keyPos(k.Value))
				continue
			}
			val := c.convert(v, depth+1)
			if c.deep {
				return nil
			}
			if val == nil {
				val = &node{kind: kindNull, pos: c.pos(v), tag: "!!invalid"}
			}
			n.set(key, val)
		}
		return n
	}
	c.e.add(p, "yaml: unexpected node")
	return nil
}

func hasKey(n *node, k string) bool { _, ok := n.index[k]; return ok }
