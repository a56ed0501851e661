//! A bounded reader of Python pickles as plain data: it builds strings, numbers, lists and
//! dicts, and never calls anything.
//!
//! A class reference (`GLOBAL`, `STACK_GLOBAL`) is an opaque marker; a call or an instance
//! (`REDUCE`, `NEWOBJ`, `OBJ`, `INST`) is an [`Node::Object`] whose state is what `BUILD`
//! hands it (for an ordinary instance, the dict of its attributes). Extensions, persistent
//! ids and out-of-band buffers are refused.
//!
//! Why not `serde-pickle`: it reads the same opcodes, but turns its stack into nested values
//! by recursion with no bound (a 400 KiB file of nested lists overflows the stack, which
//! aborts the process) and copies a memoised value for every reference to it (so references
//! to references grow a small file exponentially). This reader keeps every value in one
//! arena and containers hold indices into it, so a memo reference is an index, a reference
//! cycle is harmless, and nothing recurses; the work is linear in the input, which is itself
//! bounded.

use std::fmt;

/// The most values one pickle may build.
const MAX_NODES: usize = 1 << 18;
/// The most `MARK`s open at once.
const MAX_MARKS: usize = 256;
/// The most entries on the stack and in the memo.
const MAX_STACK: usize = 1 << 18;

/// An index into [`Pickle::nodes`].
pub(crate) type Id = usize;

/// One value of a pickle.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, a float, or a text integer that does not parse: kept
    /// as "a number", not its value.
    OtherNumber,
    Str(String),
    Bytes(Vec<u8>),
    /// A list, a tuple, a set or a frozenset.
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    /// A class or function named by a module and a name; never looked up.
    Global,
    /// What calling a global made: its state, once `BUILD` gave it one.
    Object(Option<Id>),
}

/// A parsed pickle: its values, and the one `STOP` left on the stack.
#[derive(Debug)]
pub(crate) struct Pickle {
    nodes: Vec<Node>,
    root: Id,
}

/// Why a pickle was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PickleError {
    at: usize,
    reason: &'static str,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.at)
    }
}

impl Pickle {
    /// The value `STOP` returned.
    pub(crate) fn root(&self) -> Id {
        self.root
    }

    /// The value at `id`.
    pub(crate) fn node(&self, id: Id) -> &Node {
        &self.nodes[id]
    }

    /// What `id` holds as data: an object's state when it has one (the attribute dict of
    /// an ordinary instance, or the first of a `(dict, slots)` pair), else the value itself.
    pub(crate) fn data(&self, id: Id) -> &Node {
        let mut id = id;
        // An object's state is never itself an object's state more than a few times over.
        for _ in 0..4 {
            match &self.nodes[id] {
                Node::Object(Some(state)) => id = *state,
                Node::List(items) if items.len() == 2 => match &self.nodes[items[0]] {
                    Node::Dict(_) | Node::Object(_) => id = items[0],
                    _ => break,
                },
                _ => break,
            }
        }
        &self.nodes[id]
    }

    /// The entries of the dict `id` holds as data (none when it holds no dict).
    pub(crate) fn entries(&self, id: Id) -> &[(Id, Id)] {
        match self.data(id) {
            Node::Dict(entries) => entries,
            _ => &[],
        }
    }

    /// The value under the string key `key` in the dict `id` holds as data; the last one
    /// set, as in Python.
    pub(crate) fn get(&self, id: Id, key: &str) -> Option<Id> {
        self.entries(id)
            .iter()
            .rev()
            .find(|(k, _)| matches!(&self.nodes[*k], Node::Str(s) if s == key))
            .map(|(_, v)| *v)
    }

    /// The string at `id`, if it is one.
    pub(crate) fn str(&self, id: Id) -> Option<&str> {
        match &self.nodes[id] {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Reads `bytes` as one pickle (protocols 0 to 5).
pub(crate) fn read(bytes: &[u8]) -> Result<Pickle, PickleError> {
    Reader {
        input: bytes,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
    }
    .run()
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    /// The stack's length at each open `MARK`.
    marks: Vec<usize>,
    /// Memo slots by index; `None` for a slot never written.
    memo: Vec<Option<Id>>,
}

impl Reader<'_> {
    fn fail<T>(&self, reason: &'static str) -> Result<T, PickleError> {
        Err(PickleError {
            at: self.pos,
            reason,
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        if self.input.len() - self.pos < n {
            return self.fail("the file ends too soon");
        }
        let taken = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, width: usize) -> Result<usize, PickleError> {
        let bytes = self.take(width)?;
        let mut value: u64 = 0;
        for (i, b) in bytes.iter().enumerate() {
            value |= u64::from(*b) << (8 * i);
        }
        usize::try_from(value).or_else(|_| self.fail("a length too large"))
    }

    /// A text line, without its newline (protocol 0 arguments).
    fn line(&mut self) -> Result<&[u8], PickleError> {
        let rest = &self.input[self.pos..];
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return self.fail("a line with no end");
        };
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn new_node(&mut self, node: Node) -> Result<Id, PickleError> {
        if self.nodes.len() >= MAX_NODES {
            return self.fail("too many values");
        }
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn push_id(&mut self, id: Id) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.fail("too deep a stack");
        }
        self.stack.push(id);
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<(), PickleError> {
        let id = self.new_node(node)?;
        self.push_id(id)
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.fail("an empty stack popped");
        }
        Ok(self.stack.pop().unwrap_or_default())
    }

    fn top(&self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(id) if self.stack.len() > floor => Ok(*id),
            _ => self.fail("an empty stack read"),
        }
    }

    /// The items above the last `MARK`, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let Some(at) = self.marks.pop() else {
            return self.fail("no mark to close");
        };
        Ok(self.stack.split_off(at))
    }

    fn string(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        let Ok(text) = std::str::from_utf8(bytes) else {
            return self.fail("a string that is not UTF-8");
        };
        let text = text.to_owned();
        self.push(Node::Str(text))
    }

    fn bytes(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?.to_vec();
        self.push(Node::Bytes(bytes))
    }

    fn memo_put(&mut self, slot: usize) -> Result<(), PickleError> {
        if slot >= MAX_STACK {
            return self.fail("a memo slot out of bounds");
        }
        let top = self.top()?;
        if self.memo.len() <= slot {
            self.memo.resize(slot + 1, None);
        }
        self.memo[slot] = Some(top);
        Ok(())
    }

    fn memo_get(&mut self, slot: usize) -> Result<(), PickleError> {
        match self.memo.get(slot).copied().flatten() {
            Some(id) => self.push_id(id),
            None => self.fail("a memo slot never written"),
        }
    }

    fn text_slot(&mut self) -> Result<usize, PickleError> {
        let line = self.line()?;
        match std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            Some(slot) => Ok(slot),
            None => self.fail("a memo slot that is not a number"),
        }
    }

    /// Adds `items` to the list at `list`.
    fn extend_list(&mut self, list: Id, items: Vec<Id>) -> Result<(), PickleError> {
        match &mut self.nodes[list] {
            Node::List(held) => {
                held.extend(items);
                Ok(())
            }
            // `list.extend` of an object: nothing we can see.
            Node::Object(_) => Ok(()),
            _ => self.fail("an append to something not a list"),
        }
    }

    /// Sets the pairs of `items` in the dict at `dict`.
    fn set_items(&mut self, dict: Id, items: &[Id]) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.fail("a key without a value");
        }
        let pairs = items.chunks_exact(2).map(|kv| (kv[0], kv[1]));
        match &mut self.nodes[dict] {
            Node::Dict(held) => {
                held.extend(pairs);
                Ok(())
            }
            Node::Object(_) => Ok(()),
            _ => self.fail("a set item on something not a dict"),
        }
    }

    fn number(&mut self, value: Option<i64>) -> Result<(), PickleError> {
        self.push(value.map_or(Node::OtherNumber, Node::Int))
    }

    /// A little-endian two's-complement integer of `n` bytes (`LONG1`, `LONG4`).
    fn long(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        let value = (n <= 8).then(|| {
            let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut wide = [fill; 8];
            wide[..n].copy_from_slice(bytes);
            i64::from_le_bytes(wide)
        });
        self.number(value)
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one arm per opcode reads better than the opcodes spread over helpers"
    )]
    fn run(mut self) -> Result<Pickle, PickleError> {
        loop {
            let op = self.byte()?;
            match op {
                // PROTO, FRAME: the version and a frame's length, nothing to build.
                0x80 => drop(self.byte()?),
                0x95 => drop(self.take(8)?),
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Pickle {
                        nodes: self.nodes,
                        root,
                    });
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return self.fail("too many marks open");
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => drop(self.pop()?),
                b'1' => drop(self.pop_mark()?),
                b'2' => {
                    let top = self.top()?;
                    self.push_id(top)?;
                }
                b'N' => self.push(Node::None)?,
                0x88 => self.push(Node::Bool(true))?,
                0x89 => self.push(Node::Bool(false))?,
                // INT and LONG: a text integer (`I01`/`I00` are protocol 0's booleans).
                b'I' | b'L' => {
                    let line = self.line()?;
                    let text = std::str::from_utf8(line)
                        .unwrap_or("")
                        .trim_end_matches('L');
                    let node = match text {
                        "01" => Node::Bool(true),
                        "00" => Node::Bool(false),
                        _ => text.parse().map_or(Node::OtherNumber, Node::Int),
                    };
                    self.push(node)?;
                }
                b'J' => {
                    let bytes = self.take(4)?;
                    let value = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                    self.number(Some(i64::from(value)))?;
                }
                b'K' => {
                    let value = self.byte()?;
                    self.number(Some(i64::from(value)))?;
                }
                b'M' => {
                    let value = self.uint(2)?;
                    self.number(i64::try_from(value).ok())?;
                }
                0x8a => {
                    let n = self.uint(1)?;
                    self.long(n)?;
                }
                0x8b => {
                    let n = self.uint(4)?;
                    self.long(n)?;
                }
                // FLOAT, BINFLOAT.
                b'F' => {
                    self.line()?;
                    self.number(None)?;
                }
                b'G' => {
                    self.take(8)?;
                    self.number(None)?;
                }
                // STRING (protocol 0, quoted): kept as its text without the quotes.
                b'S' => {
                    let line = self.line()?;
                    let text = std::str::from_utf8(line).unwrap_or("");
                    let text = text
                        .strip_prefix(['\'', '"'])
                        .and_then(|t| t.strip_suffix(['\'', '"']))
                        .unwrap_or(text)
                        .to_owned();
                    self.push(Node::Str(text))?;
                }
                // UNICODE (protocol 0): raw-unicode-escape, read as UTF-8.
                b'V' => {
                    let line = self.line()?;
                    let Ok(text) = std::str::from_utf8(line) else {
                        return self.fail("a string that is not UTF-8");
                    };
                    let text = text.to_owned();
                    self.push(Node::Str(text))?;
                }
                // SHORT_BINSTRING, BINSTRING (Python 2's str), and the unicode strings.
                b'U' | 0x8c => {
                    let n = self.uint(1)?;
                    self.string(n)?;
                }
                b'T' | b'X' => {
                    let n = self.uint(4)?;
                    self.string(n)?;
                }
                0x8d => {
                    let n = self.uint(8)?;
                    self.string(n)?;
                }
                // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8.
                b'C' => {
                    let n = self.uint(1)?;
                    self.bytes(n)?;
                }
                b'B' => {
                    let n = self.uint(4)?;
                    self.bytes(n)?;
                }
                0x8e | 0x96 => {
                    let n = self.uint(8)?;
                    self.bytes(n)?;
                }
                // Containers.
                // EMPTY_TUPLE, EMPTY_LIST, EMPTY_SET; EMPTY_DICT.
                b')' | b']' | 0x8f => self.push(Node::List(Vec::new()))?,
                b'}' => self.push(Node::Dict(Vec::new()))?,
                b't' | b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::List(items))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let dict = self.new_node(Node::Dict(Vec::new()))?;
                    self.set_items(dict, &items)?;
                    self.push_id(dict)?;
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.extend_list(list, vec![item])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend_list(list, items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, &[key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, &items)?;
                }
                // Memo.
                b'p' => {
                    let slot = self.text_slot()?;
                    self.memo_put(slot)?;
                }
                b'q' => {
                    let slot = self.uint(1)?;
                    self.memo_put(slot)?;
                }
                b'r' => {
                    let slot = self.uint(4)?;
                    self.memo_put(slot)?;
                }
                0x94 => {
                    let slot = self.memo.len();
                    self.memo_put(slot)?;
                }
                b'g' => {
                    let slot = self.text_slot()?;
                    self.memo_get(slot)?;
                }
                b'h' => {
                    let slot = self.uint(1)?;
                    self.memo_get(slot)?;
                }
                b'j' => {
                    let slot = self.uint(4)?;
                    self.memo_get(slot)?;
                }
                // Classes and calls: markers, never looked up or called.
                b'c' => {
                    self.line()?;
                    self.line()?;
                    self.push(Node::Global)?;
                }
                0x93 => {
                    self.pop()?;
                    self.pop()?;
                    self.push(Node::Global)?;
                }
                // REDUCE, NEWOBJ: a callable and its arguments.
                b'R' | 0x81 => {
                    self.pop()?;
                    self.pop()?;
                    self.push(Node::Object(None))?;
                }
                // NEWOBJ_EX: a class, its arguments and keyword arguments.
                0x92 => {
                    for _ in 0..3 {
                        self.pop()?;
                    }
                    self.push(Node::Object(None))?;
                }
                // OBJ: a class and its arguments after a mark; INST: the class as text.
                b'o' => {
                    self.pop_mark()?;
                    self.push(Node::Object(None))?;
                }
                b'i' => {
                    self.line()?;
                    self.line()?;
                    self.pop_mark()?;
                    self.push(Node::Object(None))?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let object = self.top()?;
                    if let Node::Object(held) = &mut self.nodes[object] {
                        *held = Some(state);
                    }
                }
                _ => return self.fail("an opcode this reader does not take"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_and_objects_are_read_without_calling_anything() -> Result<(), PickleError> {
        // pickle.dumps(C(), 2) where C's __dict__ is {"a": [1, "x"]}, then a dict of it.
        let bytes = b"\x80\x02c__main__\nC\nq\x00)\x81q\x01}q\x02X\x01\x00\x00\x00aq\x03]q\x04(K\x01X\x01\x00\x00\x00xq\x05esb.";
        let p = read(bytes)?;
        let a = p.get(p.root(), "a").expect("a");
        let Node::List(items) = p.node(a) else {
            panic!("{:?}", p.node(a))
        };
        assert_eq!(p.node(items[0]), &Node::Int(1));
        assert_eq!(p.str(items[1]), Some("x"));
        Ok(())
    }

    #[test]
    fn a_memo_reference_is_the_same_value_not_a_copy() -> Result<(), PickleError> {
        // Each list holds the previous one twice, 60 times over: 2^60 values were it copied.
        let mut b = b"\x80\x02X\x01\x00\x00\x00aq\x00".to_vec();
        for i in 1..60u8 {
            b.extend_from_slice(&[b']', b'(', b'h', i - 1, b'h', i - 1, b'e', b'q', i]);
        }
        b.push(b'.');
        let p = read(&b)?;
        assert!(p.nodes.len() < 100);
        Ok(())
    }

    #[test]
    fn a_list_that_holds_itself_is_read() -> Result<(), PickleError> {
        let p = read(b"\x80\x02]q\x00h\x00a.")?;
        assert_eq!(p.node(p.root()), &Node::List(vec![p.root()]));
        Ok(())
    }

    #[test]
    fn lists_nested_200_000_deep_are_read_without_recursion() -> Result<(), PickleError> {
        // What overflows the stack of a reader that recurses: each list appended to the one
        // before it.
        let deep = [
            b"\x80\x02".as_slice(),
            &vec![b']'; 200_000],
            &vec![b'a'; 199_999],
            b".",
        ]
        .concat();
        let p = read(&deep)?;
        assert_eq!(p.nodes.len(), 200_000);
        Ok(())
    }

    #[test]
    fn hostile_input_is_refused_without_panic() {
        let deep_marks = [
            b"\x80\x02".as_slice(),
            &vec![b'('; 100_000],
            b"]",
            &vec![b'l'; 100_000],
            b".",
        ]
        .concat();
        let deep_lists = [
            b"\x80\x02".as_slice(),
            &vec![b']'; 300_000],
            &vec![b'a'; 299_999],
            b".",
        ]
        .concat();
        let long_dup = [b"\x80\x02N".as_slice(), &vec![b'2'; 300_000], b"."].concat();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "the file ends too soon"),
            (b"\x80\x02X\x01\x00\x00", "the file ends too soon"),
            (b"\x80\x02X\xff\xff\xff\xff", "the file ends too soon"),
            (
                b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
                "the file ends too soon",
            ),
            (b"\x80\x02\x8b\xff\xff\xff\x7f", "the file ends too soon"),
            (b"\x80\x02.", "an empty stack popped"),
            (b"\x80\x02h\x05.", "a memo slot never written"),
            (b"\x80\x02r\xff\xff\xff\xff", "a memo slot out of bounds"),
            (b"\x80\x02q\x00", "an empty stack read"),
            (b"\x80\x02Nr\xff\xff\xff\x7f", "a memo slot out of bounds"),
            (b"\x80\x02N(.", "an empty stack popped"),
            (b"\x80\x02Nu.", "no mark to close"),
            (b"\x80\x02Ns.", "an empty stack popped"),
            (b"\x80\x02K\x01K\x02a.", "an append to something not a list"),
            (b"\x80\x02}(.", "an empty stack popped"),
            (b"\x80\x02}(Nu.", "a key without a value"),
            (b"\x80\x02\x8cthis is cut", "the file ends too soon"),
            (b"\x80\x02Q", "an opcode this reader does not take"),
            (b"\x80\x02N", "the file ends too soon"),
            (b"ccopy\nno end", "a line with no end"),
            (&deep_marks, "too many marks open"),
            (&deep_lists, "too many values"),
            (&long_dup, "too deep a stack"),
        ];
        for (bytes, reason) in cases {
            match read(bytes) {
                Ok(p) => panic!("{bytes:?} read as {:?}", p.node(p.root())),
                Err(e) => assert!(e.to_string().starts_with(reason), "{bytes:?}: {e}"),
            }
        }
    }

    #[test]
    fn every_prefix_of_a_real_pickle_is_refused_and_the_whole_is_read() {
        // A RequestsCookieJar with one cookie, as `pickle.dumps` writes it (protocol 4).
        let whole = super::super::tests::SAVED_JAR;
        for end in 0..whole.len() {
            assert!(read(&whole[..end]).is_err(), "{end}");
        }
        assert!(read(whole).is_ok());
    }
}
