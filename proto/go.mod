module github.com/hookline/hookline/proto

go 1.26
