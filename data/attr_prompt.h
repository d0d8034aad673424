// data/attr_prompt.h - EMO-LLaMA's handcrafted age-gender-race (AGR) prompt: the attributes
// rendered by a template into the first human turn, before tokenisation (so LLaVA's label
// masking stays exact: the prompt is part of the instruction and never supervised).
// defines: et_attr_prompt, et_attr_position, ET_ATTR_PROMPT_DEFAULT, et_attr_prompt_check,
//          et_attr_prompt_render, et_attr_prompt_apply, et_attr_prompt_turns
//
// Contract
// - Template: free text with the placeholders {age}, {gender}, {race} (each optional, any
//   order, repeats allowed); "{{" and "}}" are literal braces; any other {word} or an
//   unbalanced brace is an error (et_attr_prompt_check, run when the config is read).
//   The default, ET_ATTR_PROMPT_DEFAULT, is ours (the paper's text is unpublished).
// - Position: prefix puts "<prompt> " in front of the question text, after the media
//   placeholders and the whitespace that lead the turn ("<image>\nWhat ..." ->
//   "<image>\n<prompt> What ..."); suffix appends " <prompt>" to the turn.
// - Values: the sample's attributes.{age, gender, race} as text (a numeric age is written as
//   its decimal text, e.g. "34"). A template that names an attribute the sample lacks is an
//   error naming the attribute (the caller adds the file and sample).
// - Only the first human turn changes; every other turn, and the answer, stay as they are.
#ifndef ET_DATA_ATTR_PROMPT_H
#define ET_DATA_ATTR_PROMPT_H

#include <stdbool.h>

#include "core/status.h"
#include "data/template.h"

#define ET_ATTR_PROMPT_DEFAULT "Attributes of the person: age {age}, gender {gender}, race {race}."

typedef enum { ET_ATTR_PREFIX, ET_ATTR_SUFFIX } et_attr_position;

typedef struct et_attr_prompt {
    const char *tmpl;  // the template (borrowed)
    et_attr_position position;
} et_attr_prompt;

// Whether tmpl is a valid template; the error names `what` (e.g. "attribute_prompt.template").
et_status et_attr_prompt_check(const char *tmpl, const char *what);
// The rendered prompt (caller frees). A NULL value for a placeholder the template uses is
// ET_ERR_MISSING naming "attributes.<name>".
et_status et_attr_prompt_render(const char *tmpl, const char *age, const char *gender,
                                const char *race, char **out);
// The first human turn's new text: value with the rendered prompt at p->position.
et_status et_attr_prompt_apply(const et_attr_prompt *p, const char *value, const char *age,
                               const char *gender, const char *race, char **out);

// Rewrites the first human turn ("human" or "user") of turns[0..n) with the prompt; *owned
// receives the new text, which turns[i].value then points to (free it after use). No human
// turn: nothing changes (the template reports an empty conversation).
et_status et_attr_prompt_turns(const et_attr_prompt *p, et_chat_turn *turns, size_t n,
                               const char *age, const char *gender, const char *race, char **owned);

#endif
