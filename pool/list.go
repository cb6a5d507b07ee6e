package pool

// links are the prev/next pointers of an element in one intrusive list.
// Elements carry their own links so that the hot path allocates nothing.
type links[T any] struct{ prev, next *T }

// ilist is an intrusive doubly linked list; at returns an element's links
// for this list. The front is the most recently pushed element.
type ilist[T any] struct {
	head, tail *T
	n          int
	at         func(*T) *links[T]
}

func (l *ilist[T]) pushFront(x *T) {
	lx := l.at(x)
	lx.prev, lx.next = nil, l.head
	if l.head != nil {
		l.at(l.head).prev = x
	} else {
		l.tail = x
	}
	l.head = x
	l.n++
}

func (l *ilist[T]) pushBack(x *T) {
	lx := l.at(x)
	lx.prev, lx.next = l.tail, nil
	if l.tail != nil {
		l.at(l.tail).next = x
	} else {
		l.head = x
	}
	l.tail = x
	l.n++
}

func (l *ilist[T]) remove(x *T) {
	lx := l.at(x)
	if lx.prev != nil {
		l.at(lx.prev).next = lx.next
	} else {
		l.head = lx.next
	}
	if lx.next != nil {
		l.at(lx.next).prev = lx.prev
	} else {
		l.tail = lx.prev
	}
	lx.prev, lx.next = nil, nil
	l.n--
}

// moveToBack moves x, an element of l, to the back.
func (l *ilist[T]) moveToBack(x *T) {
	if l.tail == x {
		return
	}
	l.remove(x)
	l.pushBack(x)
}
