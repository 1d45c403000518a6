//! The shape of a keepalived.conf: words, quoted strings, comments and `{ }` blocks, read into
//! a tree of statements that keep their line numbers. Nothing here knows what a keyword means.

use super::super::MAX_NESTING;
use super::Report;

/// One directive: its words (the keyword first) and, when it opens one, its block.
#[derive(Debug)]
pub(super) struct Stmt {
    /// 1-based line of the keyword.
    pub line: usize,
    pub words: Vec<String>,
    pub block: Option<Block>,
}

#[derive(Debug)]
pub(super) struct Block {
    pub close: usize,
    pub body: Vec<Stmt>,
}

impl Stmt {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The `i`th word after the keyword.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i + 1).map(String::as_str)
    }

    /// The words after the keyword.
    pub fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or(&[])
    }

    pub fn body(&self) -> &[Stmt] {
        self.block.as_ref().map_or(&[], |b| b.body.as_slice())
    }

    /// The line that ends the statement: its closing brace, or its own line.
    pub fn last_line(&self) -> usize {
        self.block.as_ref().map_or(self.line, |b| b.close)
    }

    /// "line 12" or "lines 12-20", to name what a note covers.
    pub fn span(&self) -> String {
        if self.last_line() > self.line {
            format!("lines {}-{}", self.line, self.last_line())
        } else {
            format!("line {}", self.line)
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Open,
    Close,
}

/// An open block: the statement that owns it (none for a stray `{`) and what it holds so far.
struct Frame {
    owner: Option<Stmt>,
    open: usize,
    body: Vec<Stmt>,
}

/// Reads the whole text; braces that do not match and quotes left open are reported as errors
/// (every one of them), and the tree is still returned so that later stages can report more.
pub(super) fn parse(text: &str, report: &mut Report) -> Vec<Stmt> {
    let mut stack = vec![Frame {
        owner: None,
        open: 0,
        body: Vec::new(),
    }];
    // Braces still open inside a block nested too deeply: counted, never built.
    let mut too_deep = 0usize;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let tokens = match lex(raw) {
            Ok(tokens) => tokens,
            Err(why) => {
                report.error(line, why);
                continue;
            }
        };
        let mut current: Option<Stmt> = None;
        for token in tokens {
            // Inside a block nested too deeply only braces are counted; nothing is built.
            if too_deep > 0 {
                match token {
                    Token::Open => too_deep += 1,
                    Token::Close => too_deep -= 1,
                    Token::Word(_) => {}
                }
                continue;
            }
            match token {
                Token::Word(word) => match current.as_mut() {
                    Some(stmt) => stmt.words.push(word),
                    None => {
                        current = Some(Stmt {
                            line,
                            words: vec![word],
                            block: None,
                        })
                    }
                },
                Token::Open => {
                    // keepalived lets the brace sit on the keyword's line or on the next one.
                    let owner = current.take().or_else(|| {
                        let body = &mut stack.last_mut()?.body;
                        match body.last() {
                            Some(prev) if prev.block.is_none() => body.pop(),
                            _ => None,
                        }
                    });
                    if stack.len() > MAX_NESTING {
                        report.error(
                            owner.as_ref().map_or(line, |o| o.line),
                            format!(
                                "this block is nested more than {MAX_NESTING} levels deep \
                                 (keepalived.conf needs 4); it and everything in it up to its \
                                 closing brace is not read"
                            ),
                        );
                        too_deep = 1;
                        continue;
                    }
                    if owner.is_none() {
                        report.error(line, "`{` opens a block that has no keyword before it");
                    }
                    stack.push(Frame {
                        owner,
                        open: line,
                        body: Vec::new(),
                    });
                }
                Token::Close => {
                    if let (Some(stmt), Some(frame)) = (current.take(), stack.last_mut()) {
                        frame.body.push(stmt);
                    }
                    if stack.len() < 2 {
                        report.error(line, "`}` closes no open block");
                        continue;
                    }
                    close(&mut stack, line);
                }
            }
        }
        if let (Some(stmt), Some(frame)) = (current, stack.last_mut()) {
            frame.body.push(stmt);
        }
    }
    while stack.len() > 1 {
        if let Some(frame) = stack.last() {
            let what = frame
                .owner
                .as_ref()
                .map_or("a block".to_string(), |o| format!("`{}`", o.keyword()));
            report.error(
                frame.open,
                format!("{what} opens a block with `{{` that is never closed with `}}`"),
            );
        }
        let end = text.lines().count();
        close(&mut stack, end);
    }
    stack.pop().map(|root| root.body).unwrap_or_default()
}

/// Ends the innermost block at `line` and hands it to its owner in the enclosing block.
fn close(stack: &mut Vec<Frame>, line: usize) {
    let Some(frame) = stack.pop() else { return };
    let Some(mut owner) = frame.owner else { return };
    owner.block = Some(Block {
        close: line,
        body: frame.body,
    });
    if let Some(parent) = stack.last_mut() {
        parent.body.push(owner);
    }
}

/// Splits one line into words and braces. `#` and `!` start a comment anywhere outside
/// quotes; quotes (" or ') group words with their spaces and are removed, as keepalived does.
fn lex(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    // A word has started even when it is still empty (`""` is an empty word).
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' {
                match chars.next() {
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some('r') => word.push('\r'),
                    Some(other) => word.push(other),
                    None => word.push('\\'),
                }
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '#' | '!' => break,
            '"' | '\'' => {
                quote = Some(c);
                started = true;
            }
            '{' | '}' => {
                if started {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    started = false;
                }
                tokens.push(if c == '{' { Token::Open } else { Token::Close });
            }
            c if c.is_whitespace() => {
                if started {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!(
            "a string opened with {q} is not closed on this line"
        ));
    }
    if started {
        tokens.push(Token::Word(word));
    }
    Ok(tokens)
}
